"""Where the state store lives and which schema it must be at: what a command needs to
know before it decides whether to load SQLAlchemy at all. No SQLAlchemy here.

db.py opens the store with SQLAlchemy (and migrates it); quick.py reads a current local
SQLite store with Python's sqlite3 alone, for the commands that only read (``gitswarm
history``), since importing SQLAlchemy costs more than the whole rest of such a command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gitswarm.errors import ConfigError
from gitswarm.files import TooLarge, read_bounded

ENV_VAR = "GITSWARM_STATE"
FILE_VAR = "GITSWARM_STATE_FILE"
_MAX_LOCATION_FILE = 4096  # a URL, not a document
FILE_NAME = "state.db"
VERSION_TABLE = "gitswarm_schema_version"  # not "alembic_version": a shared database stays sane
# The newest migration in migrations/versions/. Opening a store that is already there
# reads only this, so commands like `gitswarm history` never import Alembic;
# test_store_open checks it against Alembic's own heads.
SCHEMA_HEAD = "0009"
# The lease of the one active agent per store (locks.py); `gitswarm status` reads who
# holds it (quick.py) before deciding whether to load SQLAlchemy.
AGENT_LOCK = "agent"


def default_location(environ: Mapping[str, str] | None = None) -> str:
    """``$GITSWARM_STATE`` if set (a path or a URL); else the text of the file named by
    ``$GITSWARM_STATE_FILE`` (a Docker secret holding a PostgreSQL URL and its password,
    which then never appears in an environment or a stack file); else ``state.db`` under
    ``$XDG_DATA_HOME/gitswarm`` (default ``~/.local/share/gitswarm``)."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_VAR, "").strip()
    if explicit:
        return explicit
    from_file = env.get(FILE_VAR, "").strip()
    if from_file:
        return _location_from_file(Path(from_file))
    data_home = env.get("XDG_DATA_HOME", "").strip()
    # The XDG spec: a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else None
    if base is None:
        home = env.get("HOME") or str(Path.home())
        base = Path(home) / ".local" / "share"
    return str(base / "gitswarm" / FILE_NAME)


def _location_from_file(path: Path) -> str:
    """The store location written in ``path`` (``$GITSWARM_STATE_FILE``). The message of
    an error names the file, never its content (a URL with a password)."""
    try:
        data = read_bounded(path, _MAX_LOCATION_FILE)
    except OSError as exc:
        raise ConfigError(
            f"${FILE_VAR}: cannot read {path}: {exc.strerror or exc}; it must name a file "
            "holding the store's location (a PostgreSQL URL, e.g. a Docker secret)"
        ) from None
    except TooLarge:
        raise ConfigError(
            f"${FILE_VAR}: {path} is larger than {_MAX_LOCATION_FILE} bytes; it must hold "
            "only the store's location (a PostgreSQL URL or a SQLite path)"
        ) from None
    text = data.decode("utf-8", errors="replace").strip()
    if not text or "\n" in text:
        raise ConfigError(
            f"${FILE_VAR}: {path} must hold the store's location on one line "
            "(a PostgreSQL URL or a SQLite path)"
        )
    return text


def sqlite_file(location: str | None) -> Path | None:
    """The file of a location that is a plain SQLite path (as db.resolve_url reads it);
    None for a URL, which only SQLAlchemy opens."""
    location = location or default_location()
    if "://" in location:
        return None
    return Path(location).expanduser().resolve()
