"""Verify: is a commit signed by a key the agent trusts? (SPEC.md section 2, step 2.)

I/O edge, between fetch and render: the Reconciler (reconcile/sync.py) calls
``Verifier.verify`` with the bare cache's ``RepoSource.git_dir`` for every environment
whose settings have ``verify:``; a rejected commit raises ``SignatureError`` — reason
``SignatureRejected``, stalling: nothing of that commit is rendered or applied until Git
moves on — whose message says why and what to do, and whose one problem's ``rule``
tells the cases apart (``signature-unsigned``, ``signature-untrusted-key``, ...).
When the agent cannot verify at all (a key file is missing, unreadable, not a public key
or inside the repository; gpg or ssh-keygen not installed), the reason is
``SignatureSetupFailed``: the operator must fix the agent's host, not the commit.

Where trust comes from
----------------------
Keys are files on the agent's host, never key text in gitswarm.yml and never files of
the repository being verified: whoever can push could change those, and so trust their
own key. A commit cannot vouch for itself either: its own ``verify:`` could drop the
requirement or list another key file. ``settings_in_force`` (source/verdicts.py) says
which settings decide (the agent's pinned ones, else those of the last revision the agent
verified and deployed, while that one verifies).

How a commit is checked
-----------------------
``git verify-commit --raw`` runs gpg or ssh-keygen against a throwaway keyring made here
for the settings: a private ``GNUPGHOME`` (0700) holding only the trusted public keys,
or an allowed-signers file holding only the trusted SSH keys — never the user's
``~/.gnupg``, ``~/.ssh`` or git configuration (``HOME``, ``GNUPGHOME`` and ``TMPDIR``
point into the keyring's folder; global and system git config are off). The verdicts
are source/verdicts.py's (pure): gpg's is read from its ``--status-fd`` lines, and the
signing key's primary fingerprint must be one of the imported ones; ssh-keygen's from
its output (git passes the commit time as ``verify-time``, so ``valid-before`` in an
allowed-signers file is honoured). The
signature's format is checked first, from the commit object: git picks the program by
the signature, not by ``gpg.format``, so an SSH signature must never reach a GPG check.

Keyrings are cached per settings (and per key files' size, mtime and inode, so an edited
key file is picked up) and removed on ``close()``; verifying a commit is then one
``git cat-file`` and one ``git verify-commit``. There is no process-wide verifier: the
edge that makes a Reconciler (cli/ops.py, cli/serve.py) makes its ``Verifier`` and
closes it when done.

(About 500 lines, on purpose: the Verifier and the keyrings it builds from the agent's key
files are the trust boundary and are read together; the pure verdicts are apart, in
source/verdicts.py.)

Why one file (over 450 lines): everything the trust decision rests on is read in one
sitting, as a security review reads it.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gitswarm.errors import NotFoundError
from gitswarm.model.config import VerifySettings
from gitswarm.source.git import run_git
from gitswarm.source.keys import keys_dir, read_key_file
from gitswarm.source.verdicts import (
    FORMAT_NAMES,
    RULE_UNSIGNED,
    RULE_WRONG_MODE,
    Mode,
    SignatureInfo,
    commit_signature,
    first_line,
    judge_gpg,
    judge_ssh,
    rejected,
    setup_failed,
    signature_format,
)

MAX_KEY_FILE_BYTES = 1024 * 1024
TOOL_TIMEOUT = 30.0

# Fixed settings of every throwaway GNUPGHOME. Which keys are trusted is decided here, by
# fingerprint, so gpg's web of trust is off; gpg never fetches or imports a key by itself,
# and never starts an agent (importing public keys and verifying need none).
_GPG_CONF = """\
# Written by gitswarm: a throwaway keyring holding only the trusted public keys.
trust-model always
no-autostart
no-auto-key-retrieve
no-auto-key-import
no-greeting
"""

_SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
_PRINCIPAL_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
# --- the verifier: keyrings cached per settings ---------------------------------------


@dataclass(frozen=True, slots=True)
class _KeyFile:
    declared: str  # as written in gitswarm.yml
    path: Path  # resolved on the agent's host
    kind: Literal["key", "allowed_signers"]
    stamp: tuple[int, int, int, int]  # device, inode, size, mtime: changes when edited


@dataclass
class _Keyring:
    """A throwaway folder: ``gnupg/`` (GNUPGHOME), ``allowed_signers``, ``tmp/``."""

    mode: Mode
    folder: Path
    stamps: tuple[tuple[int, int, int, int], ...]
    git_config: tuple[str, ...]  # `-c` settings for git verify-commit
    env: dict[str, str]
    trusted: dict[str, str] = field(default_factory=dict)  # gpg: fingerprint -> declared path
    origins: list[tuple[str, int]] = field(default_factory=list)  # ssh: line -> file, line
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def signers_file(self) -> Path:
        return self.folder / "allowed_signers"

    def remove(self) -> None:
        with self.lock:
            shutil.rmtree(self.folder, ignore_errors=True)


class Verifier:
    """Verifies commit signatures; owns the cached keyrings and removes them on close().

    Thread-safe: keyrings are built under one lock; each keyring serialises its own
    verifications (gpg is not meant to share a home between concurrent processes).
    """

    def __init__(self, *, max_keyrings: int = 16, temp_root: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._keyrings: OrderedDict[tuple[object, ...], _Keyring] = OrderedDict()
        self._max = max_keyrings
        self._temp_root = temp_root

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every keyring folder (the verifier stays usable: they are made again)."""
        with self._lock:
            keyrings = list(self._keyrings.values())
            self._keyrings.clear()
        for keyring in keyrings:
            keyring.remove()

    def keyring_folders(self) -> list[Path]:
        """The folders of the cached keyrings (for tests and diagnostics)."""
        with self._lock:
            return [k.folder for k in self._keyrings.values()]

    def verify(
        self,
        git_dir: Path,
        revision: str,
        settings: VerifySettings,
        *,
        keys_root: Path | None = None,
    ) -> SignatureInfo:
        """Who signed ``revision``, if that is a key ``settings`` trusts; else SignatureError."""
        root = (keys_root if keys_root is not None else keys_dir()).expanduser()
        files = _key_files(settings, root, git_dir)
        keyring = self._keyring(settings.mode, files)
        sha, signature = _read_signature(git_dir, revision)
        short = sha[:12]
        if signature is None:
            raise rejected(
                RULE_UNSIGNED,
                f"commit {short} is not signed, and this environment accepts only commits "
                f"signed with {FORMAT_NAMES[settings.mode]} by a trusted key "
                f"(verify.mode: {settings.mode}); sign it (git commit --amend -S --no-edit, "
                "or git rebase --exec 'git commit --amend -S --no-edit') and push again",
            )
        found = signature_format(signature)
        if found != settings.mode:
            raise rejected(
                RULE_WRONG_MODE,
                f"commit {short} is signed with {FORMAT_NAMES.get(found, 'an unknown format')}, "
                f"but this environment requires {FORMAT_NAMES[settings.mode]} signatures "
                f"(verify.mode: {settings.mode}); re-sign it with a trusted "
                f"{FORMAT_NAMES[settings.mode]} key (git -c gpg.format="
                f"{'openpgp' if settings.mode == 'gpg' else 'ssh'} commit --amend -S --no-edit)"
                ", or change verify.mode in a commit signed under the current settings",
            )
        with keyring.lock:
            proc = run_git(
                [
                    "--git-dir",
                    str(git_dir),
                    *keyring.git_config,
                    "verify-commit",
                    "--raw",
                    sha,
                ],
                env=keyring.env,
                timeout=TOOL_TIMEOUT,
                check=False,
            )
        output = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
        if settings.mode == "gpg":
            return judge_gpg(sha, output, keyring.trusted)
        return judge_ssh(sha, _relocate(output, keyring), proc.returncode)

    # --- keyrings ---------------------------------------------------------------------

    def _keyring(self, mode: Mode, files: Sequence[_KeyFile]) -> _Keyring:
        key = (mode, *((f.kind, str(f.path)) for f in files))
        stamps = tuple(f.stamp for f in files)
        with self._lock:
            cached = self._keyrings.get(key)
            if cached is not None and cached.stamps == stamps:
                self._keyrings.move_to_end(key)
                return cached
            stale = [cached] if cached is not None else []
            keyring = _build_keyring(mode, files, stamps, self._temp_root)
            self._keyrings[key] = keyring
            self._keyrings.move_to_end(key)
            while len(self._keyrings) > self._max:
                stale.append(self._keyrings.popitem(last=False)[1])
        for old in stale:
            old.remove()
        return keyring


def _key_files(settings: VerifySettings, root: Path, git_dir: Path) -> list[_KeyFile]:
    declared: list[tuple[str, Literal["key", "allowed_signers"]]] = [
        (k, "key") for k in settings.keys
    ]
    if settings.allowed_signers is not None:
        declared.append((settings.allowed_signers, "allowed_signers"))
    if not declared:
        raise setup_failed("verify trusts no key: list public key files under verify.keys")
    repo_roots = _repository_roots(git_dir)
    out: list[_KeyFile] = []
    for text, kind in declared:
        label = "verify.allowed_signers" if kind == "allowed_signers" else "verify.keys"
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = root / path
        path = path.resolve()
        if any(path == r or path.is_relative_to(r) for r in repo_roots):
            raise setup_failed(
                f"trusted key file {path} ({label}: {text!r}) lies inside the repository being "
                "verified, and whoever can push could replace it; keep trusted keys on the "
                "agent's host, outside the repository"
            )
        try:
            st = path.stat()
        except FileNotFoundError:
            raise setup_failed(
                f"trusted key file {path} ({label}: {text!r}) does not exist; put the public "
                "key there on the agent's host, or fix the path in gitswarm.yml (relative "
                f"paths are read from {root})"
            ) from None
        except OSError as exc:
            raise setup_failed(f"cannot read trusted key file {path}: {exc.strerror}") from exc
        if not path.is_file():
            raise setup_failed(f"trusted key file {path} ({label}: {text!r}) is not a regular file")
        if st.st_size > MAX_KEY_FILE_BYTES:  # gpg reads these files itself: bound them here
            raise setup_failed(
                f"trusted key file {path} ({label}: {text!r}) is larger than the limit of "
                f"{MAX_KEY_FILE_BYTES} bytes; give the public key file itself"
            )
        out.append(_KeyFile(text, path, kind, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)))
    return out


def _repository_roots(git_dir: Path) -> list[Path]:
    """Folders that belong to the repository: its git dir, and its work tree if it has one
    in the usual place."""
    resolved = git_dir.resolve()
    return [resolved, resolved.parent] if resolved.name == ".git" else [resolved]


def _build_keyring(
    mode: Mode,
    files: Sequence[_KeyFile],
    stamps: tuple[tuple[int, int, int, int], ...],
    temp_root: Path | None,
) -> _Keyring:
    folder = Path(tempfile.mkdtemp(prefix="gitswarm-verify-", dir=temp_root))  # mode 0700
    try:
        gnupg = folder / "gnupg"
        gnupg.mkdir(mode=0o700)
        (gnupg / "gpg.conf").write_text(_GPG_CONF)
        tmp = folder / "tmp"
        tmp.mkdir(mode=0o700)
        env = {
            "GNUPGHOME": str(gnupg),
            "HOME": str(folder),
            "XDG_CONFIG_HOME": str(folder),
            "TMPDIR": str(tmp),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        keyring = _Keyring(mode, folder, stamps, (), env)
        gpg = shutil.which("gpg") or "gpg"
        ssh_keygen = shutil.which("ssh-keygen") or "ssh-keygen"
        if mode == "gpg":
            keyring.trusted = _import_gpg_keys(_tool("gpg", "gnupg"), files, env)
            keyring.signers_file.write_text("")  # no SSH key is trusted in gpg mode
        else:
            _tool("ssh-keygen", "openssh-client")
            text, keyring.origins = _allowed_signers(files)
            keyring.signers_file.write_text(text)
        # Every setting that decides how git verifies is given here, so that neither the
        # repository's config nor the user's can change it.
        keyring.git_config = tuple(
            arg
            for setting in (
                f"gpg.format={'openpgp' if mode == 'gpg' else 'ssh'}",
                f"gpg.program={gpg}",
                f"gpg.openpgp.program={gpg}",
                "gpg.minTrustLevel=undefined",
                f"gpg.ssh.program={ssh_keygen}",
                f"gpg.ssh.allowedSignersFile={keyring.signers_file}",
            )
            for arg in ("-c", setting)
        )
        return keyring
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise setup_failed(f"{name} is not installed; install it (apt-get install {package})")
    return found


def _run_tool(args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[bytes]:
    clean = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", **env}
    try:
        return subprocess.run(
            list(args), env=clean, capture_output=True, timeout=TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise setup_failed(f"{args[0]} timed out after {TOOL_TIMEOUT:.0f}s") from exc


def _import_gpg_keys(gpg: str, files: Sequence[_KeyFile], env: Mapping[str, str]) -> dict[str, str]:
    """Import the public keys of ``files``; their primary fingerprints -> declared path."""
    trusted: dict[str, str] = {}
    # With trust-model always, gpg cannot list an expired key without a trustdb; "direct"
    # lets it make one (in the throwaway home) and changes nothing else.
    show_only = [gpg, "--batch", "--with-colons", "--trust-model", "direct"]
    show_only += ["--import-options", "show-only", "--import"]
    for f in files:
        shown = _run_tool([*show_only, "--", str(f.path)], env)
        records = [line.split(":") for line in shown.stdout.decode(errors="replace").splitlines()]
        if any(r[0] == "sec" for r in records):
            raise setup_failed(
                f"trusted key file {f.path} (verify.keys: {f.declared!r}) holds a private "
                "key; give only the public key (gpg --armor --export FINGERPRINT > FILE) and "
                "keep the private key off the agent's host"
            )
        primaries = [
            nxt[9]
            for rec, nxt in itertools.pairwise(records)
            if rec[0] == "pub" and nxt[0] == "fpr" and len(nxt) > 9
        ]
        if not primaries:
            detail = first_line(shown.stderr.decode(errors="replace"))
            raise setup_failed(
                f"trusted key file {f.path} (verify.keys: {f.declared!r}) holds no OpenPGP "
                f"public key ({detail or 'nothing found'}); export one with "
                "gpg --armor --export FINGERPRINT > FILE"
            )
        for fingerprint in primaries:
            trusted[fingerprint.upper()] = f.declared
    imported = _run_tool(
        [gpg, "--batch", "--status-fd", "1", "--import", "--", *(str(f.path) for f in files)],
        env,
    )
    ok = {
        line.split()[3].upper()
        for line in imported.stdout.decode(errors="replace").splitlines()
        if line.startswith("[GNUPG:] IMPORT_OK ") and len(line.split()) > 3
    }
    missing = sorted(set(trusted) - ok)
    if missing:
        detail = first_line(imported.stderr.decode(errors="replace"))
        raise setup_failed(f"gpg could not import the trusted keys {', '.join(missing)}: {detail}")
    return trusted


def _allowed_signers(files: Sequence[_KeyFile]) -> tuple[str, list[tuple[str, int]]]:
    """The allowed-signers text for ``files``, and for each of its lines the file and line
    it came from (so that ssh-keygen's messages can name the operator's file)."""
    lines: list[str] = []
    origins: list[tuple[str, int]] = []
    ordered = sorted(files, key=lambda f: f.kind != "allowed_signers")  # its lines first
    for f in ordered:
        text = _read_text(f)
        if "PRIVATE KEY-----" in text:
            raise setup_failed(
                f"trusted key file {f.path} ({f.declared!r}) holds a private key; give only "
                "public keys (the .pub file) and keep the private key off the agent's host"
            )
        if f.kind == "allowed_signers":
            for number, line in enumerate(text.splitlines(), 1):
                lines.append(line)
                origins.append((str(f.path), number))
            continue
        count = 0
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key_type, blob, comment = _ssh_public_key(f, number, line)
            principal = _PRINCIPAL_UNSAFE.sub("_", comment.split()[0]) if comment else ""
            lines.append(f'{principal or f.path.stem} namespaces="git" {key_type} {blob}')
            origins.append((str(f.path), number))
            count += 1
        if count == 0:
            raise setup_failed(
                f"trusted key file {f.path} (verify.keys: {f.declared!r}) holds no SSH public "
                "key; give a .pub file (lines like 'ssh-ed25519 AAAA... name')"
            )
    return "".join(line + "\n" for line in lines), origins


def _ssh_public_key(f: _KeyFile, number: int, line: str) -> tuple[str, str, str]:
    parts = line.split(None, 2)
    problem = None
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        problem = "is not an SSH public key"
    else:
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except ValueError:
            raw = b""
        size = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
        if raw[4 : 4 + size] != parts[0].encode():
            problem = f"has a damaged {parts[0]} key"
    if problem is not None:
        raise setup_failed(
            f"trusted key file {f.path}:{number} (verify.keys: {f.declared!r}) {problem}; "
            "expected lines like 'ssh-ed25519 AAAA... name' (a .pub file)"
        )
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def _read_text(f: _KeyFile) -> str:
    data = read_key_file(
        f.path, limit=MAX_KEY_FILE_BYTES, label=f"trusted key file {f.path}", error=setup_failed
    )
    return data.decode("utf-8", errors="replace")


def _relocate(output: str, keyring: _Keyring) -> str:
    """ssh-keygen names lines of our allowed-signers file; name the operator's instead."""
    prefix = re.escape(str(keyring.signers_file))

    def origin(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        if 0 <= index < len(keyring.origins):
            path, line = keyring.origins[index]
            return f"{path}:{line}:"
        return "allowed signers:"

    return re.sub(prefix + r":(\d+):", origin, output).replace(
        str(keyring.signers_file), "the allowed signers"
    )


# --- reading the commit ---------------------------------------------------------------


def _read_signature(git_dir: Path, revision: str) -> tuple[str, str | None]:
    """The commit id of ``revision`` and its signature (None if unsigned)."""
    if not revision or any(c.isspace() for c in revision):
        raise NotFoundError(f"invalid revision {revision!r}")
    proc = run_git(
        ["--git-dir", str(git_dir), "cat-file", "--batch"],
        input=f"{revision}^{{commit}}\n".encode(),
        timeout=TOOL_TIMEOUT,
    )
    head, _, body = proc.stdout.partition(b"\n")
    fields = head.decode(errors="replace").split()
    if len(fields) != 3 or fields[1] != "commit":
        raise NotFoundError(f"unknown revision {revision!r} in {git_dir}")
    sha = fields[0]
    text = body[: int(fields[2])].decode("utf-8", errors="replace")
    return sha, commit_signature(text, sha256=len(sha) == 64)
