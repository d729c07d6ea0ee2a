"""``gitswarm init DIR``: write the example GitOps repository (SPEC.md section 1).

The template lives in ``gitswarm/example``. Each environment gets its own age identity,
written outside the repository (see source/keys.py) unless one already exists; the
example secret is encrypted to it, and only the public recipient goes into gitswarm.yml.
"""

from __future__ import annotations

import secrets as pysecrets
import shutil
from importlib import resources
from pathlib import Path

from gitswarm.errors import UsageError
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.source.git import run_git
from gitswarm.source.keys import default_key_path, read_identity_file, write_identity

ENVIRONMENTS = ("development", "staging", "production")
PROJECT = "medianest"


def _template_root() -> Path:
    return Path(str(resources.files("gitswarm") / "example"))


def _identity_for(env: str) -> tuple[Identity, Path, bool]:
    path = default_key_path(PROJECT, env)
    if path.exists() or path.is_symlink():
        return read_identity_file(path), path, False
    identity = Identity.generate()
    write_identity(path, identity)
    return identity, path, True


def write_example(target: Path, *, git: bool = True) -> list[str]:
    """Write the example repo into ``target``; returns lines to show the user."""
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty; choose a new directory")
    shutil.copytree(_template_root(), target, dirs_exist_ok=True)
    notes: list[str] = []
    config = target / "gitswarm.yml"
    text = config.read_text()
    for env in ENVIRONMENTS:
        identity, key_path, created = _identity_for(env)
        text = text.replace(f"@@AGE_RECIPIENT_{env.upper()}@@", identity.recipient)
        value = f"jwt-{env}-{pysecrets.token_urlsafe(24)}".encode()
        secret_file = target / "environments" / env / "secrets" / "jwt_secret.age"
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_bytes(encrypt(value, [identity.recipient]))
        verb = "created" if created else "reused"
        notes.append(f"{env}: age key {verb} at {key_path} (keep it out of Git)")
    notes.append(
        "the agent finds these keys in the keys dir; elsewhere, name them in its config "
        "(identities: {production: FILE}) or in GITSWARM_AGE_KEY_FILE_<ENV>"
    )
    config.write_text(text)
    if git:
        run_git(["init", "-q", "-b", "main"], cwd=target)
        run_git(["add", "-A"], cwd=target)
        run_git(
            [
                "-c",
                "user.name=gitswarm init",
                "-c",
                "user.email=gitswarm@localhost",
                "commit",
                "-q",
                "-m",
                "Initial GitOps repository from `gitswarm init`",
            ],
            cwd=target,
        )
        notes.append(f"git repository initialised with one commit on main in {target}")
    return notes
