"""``gitswarm secret keygen`` and ``gitswarm secret encrypt`` (edge): age keys per
environment, and encrypted secret files for the repository.

A secret's value is read from standard input (or a hidden prompt on a terminal), never
from the command line, where it would end up in shell history and process listings. It
is encrypted in memory and only the ``.age`` file is written.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.errors import UsageError
from gitswarm.model.config import Environment, RepoConfig
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from gitswarm.source import keys
from gitswarm.source.keys import write_identity
from gitswarm.source.tree import WorkTree

SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REPO_HELP = "The GitOps repository's folder (default: the current folder)."


def _config(repo: str) -> RepoConfig:
    return load_config(WorkTree(repo))


def _environment(config: RepoConfig, name: str) -> Environment:
    try:
        return config.environment(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def key_location(project: str, env: Environment, identity: Path | None = None) -> keys.KeyLocation:
    """Where source/keys.py looks for ``env``'s key (never a place gitswarm.yml names)."""
    return keys.key_location(project, env.name, identity=identity)


@click.group()
def secret() -> None:
    """age keys per environment, and encrypted secrets for the repository."""


@secret.command()
@click.option("--env", "env_name", help="Only this environment (default: all).")
@click.option("--repo", default=".", show_default=True, help=REPO_HELP)
@click.option(
    "--identity",
    "identity_file",
    type=click.Path(path_type=Path),
    help="Write (or read) --env's key at this path instead (for the agent config's identities:).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keygen(env_name: str | None, repo: str, identity_file: Path | None, as_json: bool) -> None:
    """Create each environment's age key where gitswarm looks for it (never overwritten),
    and print its public key (recipient) for gitswarm.yml."""

    def run() -> None:
        if identity_file is not None and env_name is None:
            raise UsageError("--identity is one environment's key file: give --env too")
        config = _config(repo)
        envs = [_environment(config, env_name)] if env_name else list(config.environments)
        results = []
        for env in envs:
            location = key_location(config.project, env, identity_file)
            path = location.path
            if location.inline is not None:
                identity = Identity(os.environ[location.inline], source=location.source)
                state, where = "provided", location.source
            elif path.exists() or path.is_symlink():
                identity = keys.read_identity_file(path)
                state, where = "exists", str(path)
            else:
                identity = Identity.generate()
                write_identity(path, identity)
                state, where = "created", str(path)
            listed = identity.recipient in env.secrets.recipients
            results.append(
                {
                    "env": env.name,
                    "recipient": identity.recipient,
                    "key": where,
                    "state": state,
                    "in_gitswarm_yml": listed,
                }
            )
        if as_json:
            emit_json({"ok": True, "keys": results})
            return
        for r in results:
            click.echo(f"{r['env']}: {r['recipient']}  ({r['state']}: {r['key']})")
            if not r["in_gitswarm_yml"]:
                click.echo(f"  add it to gitswarm.yml: environments.{r['env']}.secrets.recipients")
        if identity_file is not None and env_name is not None:
            click.echo(
                f"The agent reads it with `identities: {{{env_name}: {identity_file}}}` in its "
                "config (gitswarm serve --config); render and validate with --identity."
            )
        click.echo("Keep the key files out of Git; the public keys (age1...) are safe to commit.")

    guarded(as_json, run)


def _read_value() -> bytes:
    stream = sys.stdin.buffer
    if stream.isatty():
        text = click.prompt(
            "Secret value (hidden)", hide_input=True, confirmation_prompt=True, err=True
        )
        return str(text).encode()
    data: bytes = stream.read()
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@secret.command(name="encrypt")
@click.option("--env", "env_name", required=True, help="The environment whose keys can read it.")
@click.option("--repo", default=".", show_default=True, help=REPO_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("name")
def encrypt_cmd(env_name: str, repo: str, as_json: bool, name: str) -> None:
    """Encrypt standard input (exact bytes) for ENV and write
    environments/ENV/secrets/NAME.age. The value is never taken as an argument."""

    def run() -> None:
        clean = name.removesuffix(".age")
        if not SECRET_NAME.match(clean):
            raise UsageError(
                f"secret name {name!r} is not valid: use letters, digits, '.', '_' and '-' "
                "(at most 64), starting with a letter or digit"
            )
        config = _config(repo)
        env = _environment(config, env_name)
        recipients = list(env.secrets.recipients)
        if not recipients:
            raise UsageError(
                f"environment {env.name!r} has no recipients in gitswarm.yml; run `gitswarm "
                f"secret keygen --env {env.name}` and add the printed key to "
                f"environments.{env.name}.secrets.recipients"
            )
        value = _read_value()
        if not value:
            raise UsageError("the secret value is empty; pipe it on standard input")
        try:
            data = encrypt(value, recipients, source=f"environments.{env.name}.secrets.recipients")
        finally:
            del value
        relative = f"{env.path}/secrets/{clean}.age"
        target = Path(repo) / relative
        existed = target.exists()
        _write_atomically(target, data)
        if as_json:
            emit_json({"ok": True, "file": relative, "updated": existed})
            return
        click.echo(f"{'updated' if existed else 'wrote'} {relative} (for {len(recipients)} key(s))")
        click.echo(
            "Use it in a compose file (file: is relative to the first compose file's folder):\n"
            f"  secrets:\n    {clean}:\n      file: ../{relative}"
        )

    guarded(as_json, run)
