"""Signed commits end to end: real gpg, real ssh-keygen, real git.

Throwaway keys sign real commits: Alice (GPG) and Bob (SSH) are trusted; Mallory (GPG)
and Eve (SSH) are not; Old's GPG key expired in 2020 (made and used with gpg's
``--faked-system-time``). Tampered commits carry a real signature over other content.
Every test runs with ``HOME`` pointing at an empty folder and asserts it stays empty:
verification never touches the user's ~/.gnupg, ~/.ssh or git config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.errors import NotFoundError, SignatureError
from gitswarm.model.config import VerifySettings
from gitswarm.source.verdicts import (
    REASON_SETUP,
    RULE_BAD,
    RULE_EXPIRED,
    RULE_UNSIGNED,
    RULE_UNTRUSTED,
    RULE_WRONG_MODE,
)
from gitswarm.source.verify import Verifier

pytestmark = pytest.mark.skipif(
    not (shutil.which("gpg") and shutil.which("gpgconf") and shutil.which("ssh-keygen")),
    reason="needs gpg and ssh-keygen: apt-get install gnupg openssh-client (scripts/bootstrap)",
)

# Signing with a key that expired on 2020-01-02 takes a clock from 2020-01-01. A fixed
# wrapper (test-only): git's gpg.program takes no arguments.
FAKED_GPG = '#!/bin/sh\nexec gpg --faked-system-time 20200101T010000 "$@"\n'


@dataclass
class Signed:
    """The repository, its commits by name, and the key files on the "agent's host"."""

    git_dir: Path
    work: Path
    keys: Path  # the trusted-keys folder (outside the repository)
    commits: dict[str, str]
    fingerprints: dict[str, str]


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None, input: str = "") -> str:
    proc = subprocess.run(
        args, env=env, cwd=cwd, input=input, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    base = tmp_path_factory.mktemp("signed")
    home = base / "signer-home"
    gnupg = base / "signer-gnupg"
    home.mkdir()
    gnupg.mkdir(mode=0o700)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GNUPGHOME": str(gnupg),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    keys = base / "trusted"
    keys.mkdir()
    try:
        yield _make_commits(base, keys, env)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], env=env, check=False)


def _make_commits(base: Path, keys: Path, env: dict[str, str]) -> Signed:
    gpg = ["gpg", "--batch", "--passphrase", ""]
    _run([*gpg, "--quick-gen-key", "Alice <alice@example.com>", "ed25519", "sign", "1y"], env)
    _run([*gpg, "--quick-gen-key", "Mallory <mallory@example.com>", "ed25519", "sign", "1y"], env)
    old_key = ["--quick-gen-key", "Old <old@example.com>", "ed25519", "sign", "1d"]
    _run([*gpg, "--faked-system-time", "20200101T000000", *old_key], env)
    fingerprints = {}
    for name in ("alice", "mallory", "old"):
        listing = _run(["gpg", "--with-colons", "--list-keys", f"{name}@example.com"], env)
        fingerprints[name] = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
    for name in ("alice", "old"):
        armored = _run(["gpg", "--armor", "--export", f"{name}@example.com"], env)
        (keys / f"{name}.asc").write_text(armored + "\n")
    for name in ("bob", "eve"):
        new_key = ["-t", "ed25519", "-N", "", "-C", f"{name}@example.com", "-f", str(base / name)]
        _run(["ssh-keygen", "-q", *new_key], env)
    shutil.copy(base / "bob.pub", keys / "bob.pub")
    faked = base / "faked-gpg"
    faked.write_text(FAKED_GPG)
    faked.chmod(0o755)

    work = base / "repo"
    _run(["git", "init", "-q", "-b", "main", str(work)], env)
    who = ["-c", "user.name=T", "-c", "user.email=t@example.com"]
    signing: dict[str, list[str]] = {
        "unsigned": [],
        "alice": ["user.signingkey=alice@example.com"],
        "mallory": ["user.signingkey=mallory@example.com"],
        "old": [f"gpg.program={faked}", "user.signingkey=old@example.com"],
        "bob": ["gpg.format=ssh", f"user.signingkey={base / 'bob.pub'}"],
        "eve": ["gpg.format=ssh", f"user.signingkey={base / 'eve.pub'}"],
    }
    commits: dict[str, str] = {}
    for name, config in signing.items():
        (work / "stack.yml").write_text(f"# {name}\n")
        _run(["git", "add", "-A"], env, cwd=work)
        settings = [arg for setting in config for arg in ("-c", setting)]
        sign = ["-S"] if config else []
        _run(["git", *who, *settings, "commit", "-q", *sign, "-m", name], env, cwd=work)
        commits[name] = _run(["git", "rev-parse", "HEAD"], env, cwd=work)
    for name in ("alice", "bob"):  # the same signature over other content
        raw = _run(["git", "cat-file", "commit", commits[name]], env, cwd=work)
        forged = raw.replace(f"\n\n{name}", f"\n\n{name} and a backdoor") + "\n"
        commits[f"{name}-tampered"] = _run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"], env, cwd=work, input=forged
        )
    return Signed(work / ".git", work, keys, commits, fingerprints)


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The user's home, which verification must never touch."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GNUPGHOME", raising=False)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "no-keys-here"))
    yield home
    assert sorted(p.name for p in home.rglob("*")) == []


@pytest.fixture()
def verifier() -> Iterator[Verifier]:
    with Verifier() as v:
        yield v


def gpg_settings(signed: Signed, *names: str) -> VerifySettings:
    return VerifySettings(mode="gpg", keys=tuple(str(signed.keys / f"{n}.asc") for n in names))


def ssh_settings(signed: Signed) -> VerifySettings:
    return VerifySettings(mode="ssh", keys=(str(signed.keys / "bob.pub"),))


def rejected(verifier: Verifier, signed: Signed, commit: str, settings: VerifySettings) -> str:
    with pytest.raises(SignatureError) as exc:
        verifier.verify(signed.git_dir, signed.commits[commit], settings)
    assert exc.value.reason == "SignatureRejected" and exc.value.exit_code == 2
    (problem,) = exc.value.problems
    assert str(exc.value).startswith(f"commit {signed.commits[commit][:12]} ")
    return f"{problem.rule}: {exc.value}"


# --- accepted ---------------------------------------------------------------------------


def test_a_good_gpg_signature_by_a_trusted_key_is_accepted(
    verifier: Verifier, signed: Signed
) -> None:
    info = verifier.verify(signed.git_dir, signed.commits["alice"], gpg_settings(signed, "alice"))
    assert info.commit == signed.commits["alice"]
    assert (info.mode, info.signer) == ("gpg", "Alice <alice@example.com>")
    assert info.key == signed.fingerprints["alice"]


def test_a_good_ssh_signature_by_a_trusted_key_is_accepted(
    verifier: Verifier, signed: Signed
) -> None:
    info = verifier.verify(signed.git_dir, "main~1", ssh_settings(signed))  # bob, by name
    assert info.commit == signed.commits["bob"]
    assert (info.mode, info.signer) == ("ssh", "bob@example.com")
    assert info.key.startswith("SHA256:")


def test_an_allowed_signers_file_names_the_principals(
    verifier: Verifier, signed: Signed, tmp_path: Path
) -> None:
    bob = (signed.keys / "bob.pub").read_text().split()
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'# release team\nbob,release namespaces="git" {bob[0]} {bob[1]}\n')
    settings = VerifySettings(mode="ssh", allowed_signers=str(signers))
    assert verifier.verify(signed.git_dir, signed.commits["bob"], settings).signer == "bob"


def test_relative_key_paths_are_read_from_the_trusted_keys_directory(
    signed: Signed, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = VerifySettings(mode="gpg", keys=("alice.asc",))
    with Verifier() as verifier:
        info = verifier.verify(
            signed.git_dir, signed.commits["alice"], settings, keys_root=signed.keys
        )
        assert info.signer.startswith("Alice")
        monkeypatch.setenv("GITSWARM_KEYS_DIR", str(signed.keys))  # the default keys_root
        assert verifier.verify(signed.git_dir, signed.commits["alice"], settings) == info


# --- rejected ---------------------------------------------------------------------------


def test_an_unsigned_commit_is_rejected_and_told_how_to_sign(
    verifier: Verifier, signed: Signed
) -> None:
    for settings in (gpg_settings(signed, "alice"), ssh_settings(signed)):
        why = rejected(verifier, signed, "unsigned", settings)
        assert why.startswith(RULE_UNSIGNED) and "is not signed" in why and "-S" in why


def test_a_gpg_signature_by_an_untrusted_key_is_rejected(
    verifier: Verifier, signed: Signed
) -> None:
    why = rejected(verifier, signed, "mallory", gpg_settings(signed, "alice", "old"))
    assert why.startswith(RULE_UNTRUSTED) and signed.fingerprints["mallory"] in why


def test_an_ssh_signature_by_an_untrusted_key_is_rejected(
    verifier: Verifier, signed: Signed
) -> None:
    why = rejected(verifier, signed, "eve", ssh_settings(signed))
    assert why.startswith(RULE_UNTRUSTED) and "SHA256:" in why


def test_a_signature_in_the_other_format_is_rejected_before_any_tool_runs(
    verifier: Verifier, signed: Signed
) -> None:
    why = rejected(verifier, signed, "bob", gpg_settings(signed, "alice"))
    assert why.startswith(RULE_WRONG_MODE) and "signed with SSH" in why and "mode: gpg" in why
    why = rejected(verifier, signed, "alice", ssh_settings(signed))
    assert why.startswith(RULE_WRONG_MODE) and "signed with GPG" in why


def test_a_signature_by_an_expired_gpg_key_is_rejected(verifier: Verifier, signed: Signed) -> None:
    why = rejected(verifier, signed, "old", gpg_settings(signed, "alice", "old"))
    assert why.startswith(RULE_EXPIRED) and "Old <old@example.com>" in why and "expired" in why


def test_an_ssh_key_outside_its_validity_in_allowed_signers_is_rejected(
    verifier: Verifier, signed: Signed, tmp_path: Path
) -> None:
    bob = (signed.keys / "bob.pub").read_text().split()
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'bob valid-before="20200101" {bob[0]} {bob[1]}\n')
    why = rejected(
        verifier, signed, "bob", VerifySettings(mode="ssh", allowed_signers=str(signers))
    )
    assert why.startswith(RULE_EXPIRED) and f"{signers}:1:" in why  # the operator's file


def test_a_commit_changed_after_signing_is_rejected(verifier: Verifier, signed: Signed) -> None:
    why = rejected(verifier, signed, "alice-tampered", gpg_settings(signed, "alice"))
    assert why.startswith(RULE_BAD) and "changed after it was signed" in why
    why = rejected(verifier, signed, "bob-tampered", ssh_settings(signed))
    assert why.startswith(RULE_BAD)


def test_an_unknown_revision_is_not_found(verifier: Verifier, signed: Signed) -> None:
    with pytest.raises(NotFoundError):
        verifier.verify(signed.git_dir, "no-such-branch", ssh_settings(signed))
    with pytest.raises(NotFoundError):
        verifier.verify(signed.git_dir, "main\nHEAD", ssh_settings(signed))


# --- the agent's own set-up ---------------------------------------------------------------


def setup_failure(verifier: Verifier, signed: Signed, settings: VerifySettings) -> str:
    with pytest.raises(SignatureError) as exc:
        verifier.verify(signed.git_dir, signed.commits["alice"], settings)
    assert exc.value.reason == REASON_SETUP
    return str(exc.value)


def test_a_missing_key_file_says_where_it_was_looked_for(
    verifier: Verifier, signed: Signed
) -> None:
    message = setup_failure(verifier, signed, VerifySettings(mode="gpg", keys=("nobody.asc",)))
    assert "no-keys-here/nobody.asc" in message and "does not exist" in message


def test_a_key_file_inside_the_repository_is_never_trusted(
    verifier: Verifier, signed: Signed
) -> None:
    inside = signed.work / "keys" / "alice.asc"
    inside.parent.mkdir(exist_ok=True)
    shutil.copy(signed.keys / "alice.asc", inside)
    message = setup_failure(verifier, signed, VerifySettings(mode="gpg", keys=(str(inside),)))
    assert "inside the repository" in message


def test_private_keys_and_damaged_keys_are_refused(
    verifier: Verifier, signed: Signed, tmp_path: Path
) -> None:
    private = tmp_path / "bob"
    shutil.copy(signed.keys.parent / "bob", private)
    message = setup_failure(verifier, signed, VerifySettings(mode="ssh", keys=(str(private),)))
    assert "private key" in message
    damaged = tmp_path / "damaged.pub"
    damaged.write_text("# ci\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA+xx ci\n")
    message = setup_failure(verifier, signed, VerifySettings(mode="ssh", keys=(str(damaged),)))
    assert f"{damaged}:2" in message and "damaged" in message
    not_a_key = tmp_path / "notes.asc"
    not_a_key.write_text("hello\n")
    message = setup_failure(verifier, signed, VerifySettings(mode="gpg", keys=(str(not_a_key),)))
    assert "holds no OpenPGP public key" in message


def test_keyrings_are_cached_rebuilt_when_a_key_file_changes_and_removed_on_close(
    signed: Signed, tmp_path: Path
) -> None:
    keyfile = tmp_path / "team.asc"
    shutil.copy(signed.keys / "alice.asc", keyfile)
    settings = VerifySettings(mode="gpg", keys=(str(keyfile),))
    with Verifier() as verifier:
        verifier.verify(signed.git_dir, signed.commits["alice"], settings)
        (folder,) = verifier.keyring_folders()
        assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "gnupg").stat().st_mode & 0o777 == 0o700
        verifier.verify(signed.git_dir, signed.commits["alice"], settings)
        assert verifier.keyring_folders() == [folder]  # cached
        with pytest.raises(SignatureError):
            verifier.verify(signed.git_dir, signed.commits["mallory"], settings)
        # The operator adds Mallory's key to the file: picked up at the next verification.
        env = {"PATH": os.environ["PATH"], "GNUPGHOME": str(signed.keys.parent / "signer-gnupg")}
        mallory = _run(["gpg", "--armor", "--export", "mallory@example.com"], env)
        keyfile.write_text(keyfile.read_text() + mallory + "\n")
        info = verifier.verify(signed.git_dir, signed.commits["mallory"], settings)
        assert info.key == signed.fingerprints["mallory"]
        (rebuilt,) = verifier.keyring_folders()
        assert rebuilt != folder and not folder.exists()
    assert not rebuilt.exists()


def test_no_gpg_agent_is_left_behind(verifier: Verifier, signed: Signed) -> None:
    verifier.verify(signed.git_dir, signed.commits["alice"], gpg_settings(signed, "alice"))
    (folder,) = verifier.keyring_folders()
    assert not [p.name for p in (folder / "gnupg").iterdir() if p.name.startswith("S.")]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert str(folder) not in ps.stdout


def test_one_verifier_serves_threads_at_once(verifier: Verifier, signed: Signed) -> None:
    gpg, ssh = gpg_settings(signed, "alice"), ssh_settings(signed)
    jobs = [("alice", gpg), ("bob", ssh), ("mallory", gpg), ("eve", ssh)] * 6

    def check(job: tuple[str, VerifySettings]) -> str:
        name, settings = job
        try:
            return verifier.verify(signed.git_dir, signed.commits[name], settings).signer
        except SignatureError as exc:
            return exc.problems[0].rule or ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, jobs))
    assert (
        results
        == [
            "Alice <alice@example.com>",
            "bob@example.com",
            RULE_UNTRUSTED,
            RULE_UNTRUSTED,
        ]
        * 6
    )
    assert len(verifier.keyring_folders()) == 2
