"""Which age identity decrypts an environment's secrets: the operator's choice, never the
repository's (issue 11, point 3), and every key file read bounded (point 2).

An attacker with push access tried: ``secrets.identity_file: /etc/shadow``; pointing
development's ``identity_file`` at production's key to decrypt production's secret into a
development stack; environment names that share key variables; renaming ``project:`` to
read another project's keys; ``/dev/zero`` and FIFOs as key files. Real git, real age
(pyrage) and the real CLI; the swarm is the fake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError, SecretError, SignatureError
from gitswarm.model.config import VerifySettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from gitswarm.source.keys import MAX_IDENTITY_BYTES, key_location, load_identity, write_identity
from gitswarm.source.repo import RepoSource
from gitswarm.source.tree import WorkTree
from gitswarm.source.verify import MAX_KEY_FILE_BYTES, Verifier
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

DEV_SECRETS = "environments/development/secrets"
PROD_SECRET = "environments/production/secrets/jwt_secret.age"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    for name in list(os.environ):
        if name.startswith("GITSWARM_AGE_KEY"):
            monkeypatch.delenv(name)
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def _key(repo: Path, env: str) -> Path:
    return repo.parent / "keys" / "medianest" / f"{env}.key"


def _add_identity_file(repo: Path, env: str, value: str) -> int:
    """Write ``identity_file: value`` under ``env``'s secrets; return its line."""
    config = repo / "gitswarm.yml"
    lines = config.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line == f"  {env}:\n")
    at = next(i for i in range(start, len(lines)) if lines[i] == "    secrets:\n") + 1
    lines.insert(at, f"      identity_file: {value}\n")
    config.write_text("".join(lines))
    return at + 1


def _identity_file_problem(line: int, env: str, suffix: str) -> str:
    return (
        f"gitswarm.yml:{line}:7: environments.{env}.secrets.identity_file: gitswarm.yml does "
        "not choose which file decrypts (whoever can push could point the agent at any file "
        "of its host, or at another environment's key); remove it and put the identity where "
        f"the operator keeps identities: the agent config (`identities: {{{env}: "
        f"/etc/gitswarm/keys/{env}.key}}` in gitswarm serve --config), "
        f"GITSWARM_AGE_KEY_FILE_{suffix} or GITSWARM_AGE_KEY_{suffix}, or "
        f"$GITSWARM_KEYS_DIR/medianest/{env}.key (see README, 'Secrets') [config-schema]"
    )


# --- the repository cannot choose the identity ----------------------------------------


def test_identity_file_in_gitswarm_yml_is_refused_and_etc_shadow_is_never_opened(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _add_identity_file(example, "development", "/etc/shadow")
    opened: list[str] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], *args: int, **kwargs: int) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert out.splitlines()[0] == _identity_file_problem(line, "development", "DEVELOPMENT")
    code, out, err = _run("render", "--env", "development", "--repo", str(example))
    assert (code, out) == (2, "")
    assert _identity_file_problem(line, "development", "DEVELOPMENT") in err
    assert "/etc/shadow" not in opened


def test_development_cannot_decrypt_production_s_secret_through_gitswarm_yml(
    example: Path,
) -> None:
    """The attack as it worked: development's identity_file named production's key and
    its overlay used production's secret file; render and validate exited 0."""
    line = _add_identity_file(example, "development", str(_key(example, "production")))
    overlay = example / "environments/development/docker-compose.yml"
    overlay.write_text(
        overlay.read_text()
        + f"secrets:\n  jwt_secret:\n    file: ../{PROD_SECRET}\n"  # line 19, 21
    )
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert _identity_file_problem(line, "development", "DEVELOPMENT") in out
    code, out, _ = _run("render", "--env", "development", "--repo", str(example))
    assert (code, out) == (2, "")

    # Without identity_file, development reads only its own key; production's file is
    # refused as another environment's secret, before any decryption is tried.
    (example / "gitswarm.yml").write_text(
        (example / "gitswarm.yml")
        .read_text()
        .replace(f"      identity_file: {_key(example, 'production')}\n", "")
    )
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2
    assert (
        "environments/development/docker-compose.yml:21:5: secret jwt_secret: "
        f"{PROD_SECRET} is a secret of environment 'production' (in environments/production/), "
        "and a stack of 'development' uses only its own: environments/development/ or "
        "shared files outside environments/, decrypted with development's identity. Encrypt "
        "the value for this environment with `gitswarm secret encrypt --env development "
        "NAME` [cross-environment]"
    ) in out.splitlines()

    # Production's ciphertext copied into development's folder: development's identity
    # cannot open it, and the message says whose key was tried.
    overlay.write_text(
        overlay.read_text().replace(f"../{PROD_SECRET}", f"../{DEV_SECRETS}/stolen.age")
    )
    (example / DEV_SECRETS / "stolen.age").write_bytes((example / PROD_SECRET).read_bytes())
    dev = Identity(_key(example, "development").read_text())
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2
    assert (
        "environments/development/docker-compose.yml:21:5: secret jwt_secret: "
        f"{DEV_SECRETS}/stolen.age is encrypted to other keys, not to the identity of this "
        f"environment (public key {dev.recipient}); encrypt it again for this environment "
        "with `gitswarm secret encrypt --env development jwt_secret` [secret]"
    ) in out.splitlines()


def test_each_environment_is_looked_up_under_its_own_names_only(tmp_path: Path) -> None:
    prod_key = tmp_path / "prod.key"
    write_identity(prod_key, Identity.generate())
    prod_text = prod_key.read_text()
    environ = {
        "GITSWARM_KEYS_DIR": str(tmp_path / "keys"),
        "GITSWARM_AGE_KEY_PRODUCTION": prod_text,
        "GITSWARM_AGE_KEY_FILE_PRODUCTION": str(prod_key),
    }
    configured = {"production": prod_key}
    where = key_location("shop", "development", configured=configured, environ=environ)
    assert (where.inline, where.path) == (None, tmp_path / "keys/shop/development.key")
    with pytest.raises(SecretError) as caught:
        load_identity("shop", "development", configured=configured, environ=environ)
    assert caught.value.reason == "SecretKeyMissing"
    assert str(caught.value).startswith(
        f"no age identity for environment 'development': {tmp_path}/keys/shop/development.key "
        "does not exist (from $GITSWARM_KEYS_DIR/<project>/<env>.key, project 'shop')."
    )
    # production finds its own in each place, in the documented order
    assert key_location("shop", "production", environ=environ).inline == (
        "GITSWARM_AGE_KEY_PRODUCTION"
    )
    del environ["GITSWARM_AGE_KEY_PRODUCTION"]
    assert key_location("shop", "production", environ=environ).origin == (
        "$GITSWARM_AGE_KEY_FILE_PRODUCTION"
    )
    del environ["GITSWARM_AGE_KEY_FILE_PRODUCTION"]
    assert key_location("shop", "production", configured=configured, environ=environ).path == (
        prod_key
    )


def test_environments_whose_names_share_key_variables_are_refused(tmp_path: Path) -> None:
    (tmp_path / "gitswarm.yml").write_text(
        "project: shop\napplication: {name: web}\nenvironments:\n  prod-a: {}\n  prod_a: {}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(WorkTree(tmp_path))
    assert [str(p) for p in caught.value.problems] == [
        "gitswarm.yml:5:3: environment 'prod_a' would read its age identity from the same "
        "places as environment 'prod-a' (GITSWARM_AGE_KEY_PROD_A, GITSWARM_AGE_KEY_FILE_PROD_A), "
        "so one could decrypt with the other's key; rename one of them (names must differ in "
        "more than '-' and '_') [name]"
    ]


# --- the CLI operator's own identity ----------------------------------------------------


def test_identity_flag_decrypts_for_its_environment_only(example: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "dev.key"
    moved.parent.mkdir()
    _key(example, "development").rename(moved)
    code, _, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2 and "development.key does not exist" in err
    code, out, err = _run(
        "render", "--env", "development", "--repo", str(example), "--identity", str(moved)
    )
    assert code == 0, err
    assert "medianest-development_jwt_secret_" in out
    code, _, err = _run("validate", "--repo", str(example), "--identity", str(moved))
    assert code == 2
    assert err.startswith("error [UsageError]: --identity is one environment's key: give --env")
    code, out, _ = _run(
        "validate", "--env", "development", "--repo", str(example), "--identity", str(moved)
    )
    assert code == 0, out
    code, out, _ = _run(
        "policy", "check", "--env", "development", "--repo", str(example), "--identity", str(moved)
    )
    assert code == 0, out


def test_keygen_writes_to_the_identity_flag_and_never_reads_gitswarm_yml(
    example: Path, tmp_path: Path
) -> None:
    target = tmp_path / "etc" / "production.key"
    code, out, _ = _run(
        "secret", "keygen", "--repo", str(example), "--env", "production",
        "--identity", str(target),
    )  # fmt: skip
    assert code == 0
    assert target.stat().st_mode & 0o777 == 0o600
    recipient = Identity(target.read_text()).recipient
    assert f"production: {recipient}  (created: {target})" in out
    assert f"`identities: {{production: {target}}}`" in out
    code, _, err = _run("secret", "keygen", "--repo", str(example), "--identity", str(target))
    assert code == 2 and "--identity is one environment's key file: give --env too" in err


# --- bounded key files ------------------------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.key"
    os.mkfifo(path)
    return path


def _huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.key"
    with path.open("wb") as handle:
        handle.truncate(MAX_IDENTITY_BYTES + 1)
    return path


IRREGULAR: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (lambda _t: Path("/dev/zero"), "is a character device, not a regular file"),
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "directory": (lambda t: t, "is a directory, not a regular file"),
    "over-64-KiB": (_huge, f"is larger than the limit of {MAX_IDENTITY_BYTES} bytes"),
}


def _in_thread(call: Callable[[], object]) -> BaseException | None:
    """Run ``call``; a read that blocks fails the test instead of hanging it."""
    caught: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "reading the key file blocked"
    return caught[0] if caught else None


@pytest.mark.parametrize("kind", list(IRREGULAR))
def test_an_irregular_or_oversized_key_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    make, words = IRREGULAR[kind]
    path = make(tmp_path)
    environ = {"GITSWARM_AGE_KEY_FILE_DEV": str(path)}
    error = _in_thread(lambda: load_identity("shop", "dev", environ=environ))
    assert isinstance(error, SecretError) and error.reason == "SecretKeyInvalid"
    assert str(error) == (
        f"age identity file {path} of environment 'dev' (from $GITSWARM_AGE_KEY_FILE_DEV) "
        + words
        + (
            "; is it the right file?"
            if "limit" in words
            else "; give the path of the key file itself"
        )
    )


def test_an_inline_identity_is_bounded_too() -> None:
    environ = {"GITSWARM_AGE_KEY_DEV": "A" * (MAX_IDENTITY_BYTES + 1)}
    with pytest.raises(SecretError, match="larger than the limit of 65536 bytes"):
        load_identity("shop", "dev", environ=environ)


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) * 1024


def _run_watched(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the real command in a child, killed when it passes 512 MiB or 120 s (an
    unbounded read of /dev/zero grows by gigabytes a second; a blocking FIFO never ends)."""
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            if _rss(proc.pid) > 512 * 1024**2 or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"{args[1]} was killed: over 512 MiB or 120 s")
            time.sleep(0.05)
        assert proc.stdout is not None
        return proc.returncode, proc.stdout.read()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_render_with_dev_zero_or_a_fifo_as_key_ends_in_bounded_time_and_memory(
    example: Path, tmp_path: Path, kind: str
) -> None:
    path = IRREGULAR[kind][0](tmp_path)
    exe = str(Path(sys.executable).with_name("gitswarm"))
    env = dict(os.environ, GITSWARM_AGE_KEY_FILE_DEVELOPMENT=str(path))
    for command in ("render", "validate"):
        code, output = _run_watched(
            [exe, command, "--env", "development", "--repo", str(example)], env
        )
        assert code == 2, output
        assert "Traceback" not in output
        assert (
            "base/docker-compose.yml:90:5: secret jwt_secret: cannot decrypt "
            "environments/development/secrets/jwt_secret.age: age identity file "
            f"{path} of environment 'development' (from $GITSWARM_AGE_KEY_FILE_DEVELOPMENT) "
            f"{IRREGULAR[kind][1]}; give the path of the key file itself [secret]"
        ) in output


# --- the agent's identities -------------------------------------------------------------


def test_agent_config_identities_are_checked_at_start(tmp_path: Path) -> None:
    good = tmp_path / "keys" / "production.key"
    write_identity(good, Identity.generate())
    fifo = _fifo(tmp_path)
    agent_yml = tmp_path / "agent.yml"
    environ = {"GITSWARM_KEYS_DIR": str(tmp_path / "keys")}
    agent_yml.write_text(
        "repo: /srv/x\nproject: medianest\nidentities:\n  production: production.key\n"
    )
    config = load_serve_config(agent_yml, {}, environ)
    assert config.identities == {"production": good} and config.project == "medianest"
    cases = {
        f"  staging: {fifo}\n": (
            f"{agent_yml}:4: identities.staging: age identity file {fifo} is a FIFO, not a "
            "regular file; give the path of the key file itself (relative paths are read "
            f"from $GITSWARM_KEYS_DIR, {tmp_path / 'keys'}; create a key with `gitswarm "
            "secret keygen --env staging --identity FILE`)"
        ),
        "  staging: /dev/zero\n": "age identity file /dev/zero is a character device",
        "  staging: missing.key\n": f"age identity file {tmp_path}/keys/missing.key does not exist",
        "  Staging: production.key\n": "environment name 'Staging' is not valid",
    }
    for line, message in cases.items():
        agent_yml.write_text(f"repo: /srv/x\nidentities:\n  production: production.key\n{line}")
        error = _in_thread(lambda: load_serve_config(agent_yml, {}, environ))
        assert isinstance(error, ConfigError)
        assert message in str(error) and str(error).startswith(f"{agent_yml}:4: "), str(error)
    assert load_serve_config(None, {"repo": "/srv/x"}, {"GITSWARM_PROJECT": "shop"}).project == (
        "shop"
    )
    agent_yml.write_text("repo: /srv/x\nproject: ../other\n")
    with pytest.raises(ConfigError, match=f"^{agent_yml}:2: project name '../other' is not valid"):
        load_serve_config(agent_yml, {}, environ)


def _two_env_repo(tmp_path: Path, recipients: dict[str, str]) -> GitOpsRepo:
    repo = GitOpsRepo(tmp_path / "repo", "shop-{env}")
    settings = (
        "project: shop\n"
        "application: {name: app, stack: 'shop-{env}'}\n"
        "environments:\n"
        + "".join(
            f"  {env}: {{secrets: {{recipients: ['{r}']}}}}\n" for env, r in recipients.items()
        )
    )
    repo.write("gitswarm.yml", settings)
    repo.compose(
        {"web": service(secrets=["token"])},
        secrets={"token": {"file": "../environments/${GITSWARM_ENV}/secrets/token.age"}},
    )
    for env in recipients:
        repo.write(f"environments/{env}/docker-compose.yml", "services: {}\n")
    return repo


def _secret(repo: GitOpsRepo, env: str, value: bytes, recipient: str) -> None:
    path = repo.path / "environments" / env / "secrets" / "token.age"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encrypt(value, [recipient]))


def test_the_agent_uses_each_environment_s_configured_identity_only(tmp_path: Path) -> None:
    dev, prod = Identity.generate(), Identity.generate()
    write_identity(tmp_path / "dev.key", dev)
    write_identity(tmp_path / "prod.key", prod)
    repo = _two_env_repo(tmp_path, {"dev": dev.recipient, "prod": prod.recipient})
    _secret(repo, "dev", b"dev-value", dev.recipient)
    _secret(repo, "prod", b"prod-value", prod.recipient)
    repo.commit("two environments, a secret each")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(
            RepoSource.open(str(repo.path)),
            store,
            lambda _t: swarm,
            identities={"prod": tmp_path / "prod.key"},
        )
        outcome = reconciler.sync(SyncRequest("app", "prod"))
        assert outcome.result == "Succeeded", outcome.message
        outcome = reconciler.sync(SyncRequest("app", "dev"))  # prod's key is not dev's
        assert (outcome.result, outcome.reason) == ("Failed", "SecretDecryptFailed")
        assert (
            "cannot decrypt environments/dev/secrets/token.age: no age identity for "
            "environment 'dev'"
        ) in outcome.message
        assert not swarm.services("shop-dev")
        reconciler = Reconciler(
            RepoSource.open(str(repo.path)),
            store,
            lambda _t: swarm,
            identities={"prod": tmp_path / "prod.key", "dev": tmp_path / "dev.key"},
        )
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"


def test_renaming_the_project_does_not_reach_another_project_s_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One keys dir holds the keys of projects shop and bank. A push to shop renames its
    project to bank and adds bank's ciphertext (bank's repository is readable): the agent
    keeps reading shop's keys, so bank's secret stays closed."""
    keys = tmp_path / "keys"
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(keys))
    shop, bank = Identity.generate(), Identity.generate()
    write_identity(keys / "shop" / "dev.key", shop)
    write_identity(keys / "bank" / "dev.key", bank)
    repo = _two_env_repo(tmp_path, {"dev": shop.recipient})
    _secret(repo, "dev", b"shop-value", shop.recipient)
    repo.commit("shop")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        first = Reconciler(source, store, lambda _t: swarm)
        assert first.sync(SyncRequest("app", "dev")).result == "Succeeded"
        deployed = store.get_status("app", "dev")
        assert deployed is not None and deployed.revision

        repo.write("gitswarm.yml", (repo.path / "gitswarm.yml").read_text().replace(
            "project: shop", "project: bank"
        ))  # fmt: skip
        _secret(repo, "dev", b"bank-value", bank.recipient)
        repo.commit("rename to bank, bring bank's secret")
        for reconciler in (first, Reconciler(source, store, lambda _t: swarm)):  # and restarted
            outcome = reconciler.sync(SyncRequest("app", "dev"))
            assert (outcome.result, outcome.reason) == ("Failed", "SecretDecryptFailed")
            assert f"(public key {shop.recipient})" in outcome.message
            assert reconciler.key_project(load_config(WorkTree(repo.path)))[0] == "shop"
        assert [line for line in swarm.log if line.startswith("create secret")] == [
            f"create secret {swarm.objects('shop-dev')[0].name}"
        ]  # only shop's, from the first sync

        (keys / "shop" / "dev.key").unlink()  # the message says which project's dir it read
        outcome = Reconciler(source, store, lambda _t: swarm).sync(SyncRequest("app", "dev"))
        assert (
            f"the keys dir is that of project 'shop' (the revision deployed last, "
            f"{deployed.revision[:12]}), not of 'bank' as gitswarm.yml now says: a commit "
            "cannot move the agent to another project's keys. To rename the project, set "
            "`project:` in the agent config"
        ) in outcome.message

        # The operator renames it: the agent config's project decides.
        pinned = Reconciler(source, store, lambda _t: swarm, project="bank")
        assert pinned.sync(SyncRequest("app", "dev")).result == "Succeeded"


# --- trusted signing keys are bounded the same way ------------------------------------


def test_trusted_signing_key_files_are_bounded_and_regular(tmp_path: Path) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "s")
    revision = repo.commit("anything")
    huge = tmp_path / "huge.asc"
    with huge.open("wb") as handle:
        handle.truncate(MAX_KEY_FILE_BYTES + 1)
    fifo = _fifo(tmp_path)
    cases = [
        (
            VerifySettings(mode="gpg", keys=(str(huge),)),
            f"trusted key file {huge} (verify.keys: {str(huge)!r}) is larger than the limit "
            f"of {MAX_KEY_FILE_BYTES} bytes; give the public key file itself",
        ),
        (
            VerifySettings(mode="ssh", keys=(str(fifo),)),
            f"trusted key file {fifo} (verify.keys: {str(fifo)!r}) is not a regular file",
        ),
        (
            VerifySettings(mode="ssh", allowed_signers="/dev/zero"),
            "trusted key file /dev/zero (verify.allowed_signers: '/dev/zero') is not a "
            "regular file",
        ),
    ]
    with Verifier(temp_root=tmp_path) as verifier:
        for settings, message in cases:
            error = _in_thread(lambda s=settings: verifier.verify(repo.path / ".git", revision, s))
            assert isinstance(error, SignatureError)
            assert message in str(error), str(error)
