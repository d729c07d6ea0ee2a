"""Where an environment's age identity (private key) comes from. I/O edge.

Where identities live is the operator's choice, never the repository's: whoever can push
could otherwise point the agent at any file of its host, or at another environment's key.
For environment ``E``, first match wins (documented in the README, "Secrets"):

1. ``--identity FILE`` of the CLI (render, validate, policy check: one ``--env``);
2. ``GITSWARM_AGE_KEY_<E>``: the key file's text itself (for the agent in a container,
   e.g. from a Docker secret read into the environment);
3. ``GITSWARM_AGE_KEY_FILE_<E>``: a path to the key file;
4. ``identities: {E: FILE}`` in the agent's config (``gitswarm serve --config``);
5. ``$GITSWARM_KEYS_DIR/<project>/<E>.key`` (default ``~/.config/gitswarm/keys``).

Each place is looked up under ``E``'s names only, so one environment never decrypts with
another's identity (repo/config.py refuses two environments whose names would share
variables). ``<E>`` is the environment name upper-cased with ``-`` as ``_``. ``<project>``
is the project the caller vouches for: the agent's (reconcile/sync.py), not whatever a
commit's gitswarm.yml says.

Every key file is read bounded (``MAX_IDENTITY_BYTES``; age key files are a few hundred
bytes) and only if it is a regular file: ``/dev/zero`` or a FIFO is refused at once,
without blocking, as an InputError naming the file. ``read_key_file`` does the same for
source/verify.py's trusted signing keys.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitswarm.errors import GitswarmError, Reason, SecretError
from gitswarm.model.config import key_suffix
from gitswarm.render.secrets import Identity

MAX_IDENTITY_BYTES = 64 * 1024


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = environ.get("GITSWARM_KEYS_DIR")
    if configured:
        return Path(configured).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "gitswarm" / "keys"


def default_key_path(project: str, env: str, environ: Mapping[str, str] | None = None) -> Path:
    return keys_dir(environ) / project / f"{env}.key"


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_key_file(
    path: Path,
    *,
    limit: int,
    label: str,
    error: Callable[[str], GitswarmError],
) -> bytes:
    """The bytes of key file ``path``, at most ``limit`` of them; ``error(message)`` for
    a file that is missing, unreadable, not a regular file (device, FIFO, socket,
    directory) or larger than ``limit``. ``label`` names the file in messages (it
    includes the path). Opened non-blocking, so a FIFO never hangs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise error(f"{label} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {label}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(
                f"{label} is {_file_kind(info.st_mode)}, not a regular file; give the path of "
                "the key file itself"
            )
        too_big = error(f"{label} is larger than the limit of {limit} bytes; is it the right file?")
        if info.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow after fstat: read no more than limit + 1
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise too_big
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {label}: {exc.strerror}") from None
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class KeyLocation:
    """Where environment ``env``'s identity is looked for: the inline variable's name when
    it is set (``path`` is then unused), else the key file; ``origin`` says which place of
    the lookup order chose it, for messages."""

    env: str
    inline: str | None
    path: Path
    origin: str

    @property
    def source(self) -> str:
        return f"${self.inline}" if self.inline else str(self.path)


def key_location(
    project: str,
    env: str,
    *,
    identity: Path | None = None,
    configured: Mapping[str, Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> KeyLocation:
    """Where ``env``'s key is looked for, in the lookup order of this module's docstring:
    ``identity`` is the CLI's ``--identity``, ``configured`` the agent config's
    ``identities:`` (environment name -> file)."""
    environ = os.environ if environ is None else environ
    suffix = key_suffix(env)
    if identity is not None:
        return KeyLocation(env, None, identity.expanduser(), "--identity")
    inline = f"GITSWARM_AGE_KEY_{suffix}"
    if environ.get(inline):
        return KeyLocation(env, inline, Path(), f"${inline}")
    variable = f"GITSWARM_AGE_KEY_FILE_{suffix}"
    if environ.get(variable):
        return KeyLocation(env, None, Path(environ[variable]).expanduser(), f"${variable}")
    chosen = (configured or {}).get(env)
    if chosen is not None:
        return KeyLocation(env, None, chosen, f"identities.{env} of the agent config")
    return KeyLocation(
        env,
        None,
        default_key_path(project, env, environ),
        f"$GITSWARM_KEYS_DIR/<project>/<env>.key, project {project!r}",
    )


def read_identity_file(path: Path, *, label: str | None = None) -> Identity:
    """The identity in key file ``path``, read bounded (see ``read_key_file``)."""

    def error(message: str) -> SecretError:
        return SecretError(message, reason=Reason.SECRET_KEY_INVALID)

    label = label or f"age identity file {path}"
    raw = read_key_file(path, limit=MAX_IDENTITY_BYTES, label=label, error=error)
    return Identity(raw.decode("utf-8", errors="replace"), source=label)


def load_identity(
    project: str,
    env: str,
    *,
    identity: Path | None = None,
    configured: Mapping[str, Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Identity:
    """``env``'s identity from the first place of the lookup order that has one."""
    environ = os.environ if environ is None else environ
    where = key_location(project, env, identity=identity, configured=configured, environ=environ)
    if where.inline is not None:
        text = environ[where.inline]
        if len(text) > MAX_IDENTITY_BYTES:
            raise SecretError(
                f"${where.inline} is larger than the limit of {MAX_IDENTITY_BYTES} bytes; "
                "it must hold the text of one age key file",
                reason=Reason.SECRET_KEY_INVALID,
            )
        return Identity(text, source=f"${where.inline}")
    label = f"age identity file {where.path} of environment {env!r} (from {where.origin})"
    if not where.path.exists() and not where.path.is_symlink():
        suffix = key_suffix(env)
        raise SecretError(
            f"no age identity for environment {env!r}: {where.path} does not exist (from "
            f"{where.origin}). Put the environment's key there, or set "
            f"GITSWARM_AGE_KEY_{suffix} / "
            f"GITSWARM_AGE_KEY_FILE_{suffix}, or identities.{env} in the agent config "
            "(see README, 'Secrets')",
            reason=Reason.SECRET_KEY_MISSING,
        )
    return read_identity_file(where.path, label=label)


def write_identity(path: Path, identity: Identity) -> None:
    """Write a new key file with mode 0600; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(identity.key_file_text(created))
