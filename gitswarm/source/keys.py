"""Where an environment's age identity (private key) comes from. I/O edge.

Lookup order, first match wins (documented in the README, "Secrets"):

1. ``GITSWARM_AGE_KEY_<ENV>``: the key file's text itself (for the agent in a container,
   e.g. from a Docker secret read into the environment);
2. ``GITSWARM_AGE_KEY_FILE_<ENV>``: a path to the key file;
3. ``identity_file`` of the environment's ``secrets`` in gitswarm.yml (outside the repo);
4. ``$GITSWARM_KEYS_DIR/<project>/<env>.key`` (default ``~/.config/gitswarm/keys``).

``<ENV>`` is the environment name upper-cased with ``-`` and ``.`` as ``_``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

from gitswarm.errors import SecretError
from gitswarm.render.secrets import Identity


def env_suffix(env: str) -> str:
    return env.upper().replace("-", "_").replace(".", "_")


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = environ.get("GITSWARM_KEYS_DIR")
    if configured:
        return Path(configured).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "gitswarm" / "keys"


def default_key_path(project: str, env: str, environ: Mapping[str, str] | None = None) -> Path:
    return keys_dir(environ) / project / f"{env}.key"


def key_location(
    project: str,
    env: str,
    identity_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, Path]:
    """Where an environment's key is looked for: (the inline variable's name when it is
    set, else None; the key file's path), in the lookup order of this module's docstring."""
    environ = os.environ if environ is None else environ
    suffix = env_suffix(env)
    inline = f"GITSWARM_AGE_KEY_{suffix}"
    if environ.get(inline):
        return inline, Path()
    path_text = environ.get(f"GITSWARM_AGE_KEY_FILE_{suffix}") or identity_file
    path = Path(path_text).expanduser() if path_text else default_key_path(project, env, environ)
    return None, path


def load_identity(
    project: str,
    env: str,
    identity_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Identity:
    environ = os.environ if environ is None else environ
    inline, path = key_location(project, env, identity_file, environ)
    if inline is not None:
        return Identity(environ[inline], source=f"${inline}")
    try:
        text = path.read_text()
    except FileNotFoundError:
        suffix = env_suffix(env)
        raise SecretError(
            f"no age identity for environment {env!r}: {path} does not exist. Put the "
            f"environment's key there, or set GITSWARM_AGE_KEY_{suffix} / "
            f"GITSWARM_AGE_KEY_FILE_{suffix} (see README, 'Secrets')",
            reason="SecretKeyMissing",
        ) from None
    except OSError as exc:
        raise SecretError(f"cannot read age identity {path}: {exc.strerror}") from exc
    return Identity(text, source=str(path))


def write_identity(path: Path, identity: Identity) -> None:
    """Write a new key file with mode 0600; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(identity.key_file_text(created))
