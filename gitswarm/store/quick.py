"""Reading a store without SQLAlchemy: ``gitswarm history`` and ``status`` on a local
store, ``gitswarm history`` and ``gitswarm dora`` on a local store or on PostgreSQL.

Importing SQLAlchemy takes longer than everything else such a command does, and SPEC.md
section 7 wants it to start at once. So when the store is a SQLite file that already
exists at the current schema, :func:`history` and :func:`reads` open it with Python's
sqlite3 and run queries.py's queries, the text ``Store.history``, ``get_status``,
``all_statuses``, ``baselines``, ``holds``, ``lock_holder`` and ``agent_source`` run
through SQLAlchemy; the rows become records through the same readers. :func:`dora` does
the same with doraread.py's read, on a SQLite file or, for a PostgreSQL URL, on a
connection of psycopg2's own (SQLAlchemy's driver is psycopg 3, ten times slower to
import; both take the URL in libpq's own form); :func:`history` reads PostgreSQL that
way too (SQLAlchemy and psycopg 3 were most of `history --env`'s 1.06 s there). In
every other case -- no file yet, an older or newer schema (which ``Store`` migrates, or
refuses by name), another driver in the URL, a PostgreSQL URL for the status reads --
they return None and the caller opens a ``Store``. They never write: a missing store
stays missing.

Errors leave as ``StoreError`` naming the store (never a password), as db.py's do.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitswarm.errors import StoreError
from gitswarm.model.operation import AgentSource, AppStatus, Baseline, LockInfo, Operation
from gitswarm.model.promotion import Hold
from gitswarm.store import queries
from gitswarm.store.location import SCHEMA_HEAD, VERSION_TABLE, default_location, sqlite_file

if TYPE_CHECKING:  # loaded where used
    from gitswarm.dora import DoraReport, DoraSettings
    from gitswarm.dora.compute import Row

BUSY_TIMEOUT = 30.0  # seconds, as db.BUSY_TIMEOUT: a reader waits out a checkpoint


def history(
    location: str | None, app: str | None = None, env: str | None = None, limit: int = 50
) -> list[Operation] | None:
    """``Store(location).history(app, env, limit)`` when the store is a current local
    SQLite file or a current PostgreSQL database; None when only a ``Store`` can answer."""
    query = queries.history(app, env, limit)  # bad arguments fail the same either way
    location = location or default_location()
    path = sqlite_file(location)
    if path is None:
        with _postgres(location, "read history") as cursor:
            if cursor is None:
                return None
            rows = _pg_rows(cursor, query)
            changes = _pg_rows(cursor, queries.changes([row["id"] for row in rows]))
            return queries.operations_from(rows, changes) if rows else []
    if not path.is_file():
        return None
    with _reading(path, "read history") as conn:
        if conn is None:
            return None
        rows = _run(conn, query)
        if not rows:
            return []
        changes = _run(conn, queries.changes([row["id"] for row in rows]))
        return queries.operations_from(rows, changes)


class LocalReads:
    """The reads ``gitswarm status`` makes (model/reads.py's ``StatusReads``: statuses,
    baselines, holds, the agent's lease and what it saw of Git), as ``Store``'s methods
    of the same names, of the local store at ``path`` (current schema): each its own
    read transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_status(self, app: str, env: str) -> AppStatus | None:
        found = queries.statuses_from(self._rows(queries.statuses(app, env), "read status"))
        return found[0] if found else None

    def all_statuses(self) -> list[AppStatus]:
        return queries.statuses_from(self._rows(queries.statuses(), "read statuses"))

    def baselines(self, app: str, env: str) -> dict[str, Baseline]:
        return queries.baselines_from(self._rows(queries.baselines(app, env), "read baselines"))

    def holds(
        self, app: str | None = None, env: str | None = None, *, active: bool | None = True
    ) -> list[Hold]:
        return queries.holds_from(self._rows(queries.holds(app, env, active), "read holds"))

    def lock_holder(self, name: str) -> LockInfo | None:
        now = datetime.now(UTC)  # the store's clock (db.utcnow) on this machine
        found = queries.locks_from(self._rows(queries.lock_holder(name, now), "read lock"))
        return found[0] if found else None

    def agent_source(self, name: str) -> AgentSource | None:
        found = queries.agent_sources_from(
            self._rows(queries.agent_source(name), "read the agent's source")
        )
        return found[0] if found else None

    def close(self) -> None:
        """Nothing is held open between reads."""

    def _rows(self, query: queries.Query, what: str) -> list[dict[str, Any]]:
        with _reading(self.path, what) as conn:
            if conn is None:  # migrated (or replaced) since reads() looked: say so
                raise StoreError(
                    f"state store sqlite:///{self.path}: {what}: its schema changed while "
                    "gitswarm read it; run the command again"
                )
            return _run(conn, query)


def reads(location: str | None) -> LocalReads | None:
    """The store's reads through sqlite3 when it is a current local SQLite file; None
    when only a ``Store`` can answer (which may create or migrate it)."""
    path = sqlite_file(location)
    if path is None or not path.is_file():
        return None
    with _reading(path, "open") as conn:
        return None if conn is None else LocalReads(path)


def dora(
    location: str | None, env: str, app: str | None, settings: DoraSettings
) -> DoraReport | None:
    """``Store(location).dora(env, app, ...)`` of ``settings`` when the store is a current
    SQLite file or a current PostgreSQL database; None when only a ``Store`` can answer."""
    from gitswarm.dora.compute import compute_rows
    from gitswarm.store import doraread

    location = location or default_location()
    start, until = settings.since - settings.failure_window, settings.until
    rows: list[Row] | None
    path = sqlite_file(location)
    if path is None:
        rows = _postgres_dora(location, env, app, start, until)
    elif not path.is_file():
        return None
    else:
        with _reading(path, "read the history for DORA") as conn:
            if conn is None:
                return None
            cursor = conn.cursor()
            cursor.row_factory = None  # tuples
            rows = doraread.read(doraread.Reader(cursor, "sqlite"), env, app, start, until)
    if rows is None:
        return None
    return compute_rows(rows, env, settings, app)


# The schemes db.resolve_url gives psycopg; libpq reads the rest of such a URL itself
# (user, password, host, port, database, and parameters such as ``host=/socket/dir``
# or ``options=-csearch_path%3D...``), as SQLAlchemy hands them to psycopg.
_PSYCOPG_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")


def _postgres_dora(
    location: str, env: str, app: str | None, start: datetime, until: datetime
) -> list[Row] | None:
    """The DORA read of a current PostgreSQL store (``_postgres``)."""
    from gitswarm.store import doraread

    with _postgres(location, "read the history for DORA") as cursor:
        if cursor is None:
            return None
        return doraread.read(doraread.Reader(cursor, "postgresql"), env, app, start, until)


@contextmanager
def _postgres(location: str, what: str) -> Iterator[Any | None]:
    """A read-only snapshot of a current PostgreSQL store through psycopg2 (the same
    libpq under a C module), not psycopg 3, the Store's driver: importing psycopg 3 runs
    its Python (asyncio, its adapters, its async classes) for about 0.2 s of CPU on a
    quiet machine, which was a third of the command; psycopg2's import is a tenth of
    that. Both hand the URL to libpq, so both reach the same server the same way.
    Yields a cursor, or None when the URL is not psycopg's or the schema not current."""
    scheme, _, rest = location.partition("://")
    if scheme not in _PSYCOPG_SCHEMES:
        yield None
        return
    import psycopg2

    display = "postgresql+psycopg://" + _hide_password(rest)
    try:
        conn = psycopg2.connect(
            "postgresql://" + rest, connect_timeout=10, application_name="gitswarm"
        )
        with closing(conn):
            # One snapshot, as Database.read (read only: it never fails to serialise).
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s)", (VERSION_TABLE,))
                found = cursor.fetchone()
                if found is None or found[0] is None:
                    yield None
                    return
                cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608
                if {str(v) for (v,) in cursor.fetchall()} != {SCHEMA_HEAD}:
                    yield None
                    return
                yield cursor
            conn.rollback()
    except psycopg2.Error as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise StoreError(f"state store {display}: {what}: {first} ({type(exc).__name__})") from exc


def _pg_rows(cursor: Any, query: queries.Query) -> list[dict[str, Any]]:
    """``query`` on a psycopg2 cursor, rows as dicts (times come aware, JSON parsed)."""
    cursor.execute(queries.pyformat(query.sql), query.params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _hide_password(rest: str) -> str:
    """A URL's part after ``scheme://`` with any password in it replaced by ``***``: in
    the user info (up to the last ``@`` before the query, so a password holding ``/`` or
    ``@`` is hidden too) and as a ``password=`` parameter."""
    head, mark, query = rest.partition("?")
    at = head.rfind("@")
    if at != -1 and ":" in head[:at]:
        head = head[:at].split(":", 1)[0] + ":***" + head[at:]
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", query, flags=re.I)
    return head + mark + query


@contextmanager
def _reading(path: Path, what: str = "read history") -> Iterator[sqlite3.Connection | None]:
    """A read transaction on the store at ``path``; None if its schema is not current."""
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)) as conn:
            conn.row_factory = _as_dict
            conn.execute("BEGIN")  # one snapshot for both queries, as Database.read
            try:
                if _schema(conn) != {SCHEMA_HEAD}:
                    yield None
                    return
                yield conn
            finally:
                conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise StoreError(
            f"state store sqlite:///{path}: {what}: {exc} ({type(exc).__name__})"
        ) from exc


def _schema(conn: sqlite3.Connection) -> set[str]:
    found = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if found is None:
        return set()
    rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608
    return {str(row["version_num"]) for row in rows}


def _as_dict(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _run(conn: sqlite3.Connection, query: queries.Query) -> list[dict[str, Any]]:
    params: dict[str, Any] = {
        name: queries.sqlite_time(value) if isinstance(value, datetime) else value
        for name, value in query.params.items()
    }
    rows: list[dict[str, Any]] = conn.execute(query.sql, params).fetchall()
    return rows
