"""Where the state store lives, how it is opened and migrated, and how its errors leave.

Every connection, transaction and migration of the store goes through ``Database``; it is
also the one place where SQLAlchemy, Alembic and DB-API errors become ``StoreError``.

SQLite runs in WAL mode (readers never wait for the writer), with a busy timeout and
foreign keys on. Python's sqlite3 module is told to keep out of transaction control and
the store issues ``BEGIN IMMEDIATE`` for writes itself: a write transaction takes SQLite's
write lock up front, so two writers queue on the busy timeout instead of one failing
with "database is locked" when it upgrades a read lock. Reads use a plain ``BEGIN`` (and
a snapshot on PostgreSQL), so the dashboard never waits for the loop.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from gitswarm.errors import StoreError
from gitswarm.model.instant import Instant
from gitswarm.store.location import SCHEMA_HEAD, VERSION_TABLE, default_location, sqlite_file

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.dialects import postgresql as pg
    from sqlalchemy.dialects import sqlite as sqlite_dialect

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another one
_WRITE = "gitswarm_write"  # execution option: this transaction writes
_MIGRATION_LOCK = 0x67697473  # pg_advisory_xact_lock key ("gits") serialising migrations

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot of the host's kernel (one value for every process and container on
    it); None where the system does not say."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def resolve_url(location: str) -> URL:
    """The SQLAlchemy URL of a location: ``sqlite:///...`` for a path, the URL itself
    otherwise. ``postgres://`` and ``postgresql://`` use psycopg 3, the driver we ship."""
    path = sqlite_file(location)
    if path is not None:
        return URL.create("sqlite", database=str(path))
    try:
        url = make_url(location)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # not echoing the location: it may hold a password
        raise StoreError(f"the state store location is not a valid URL ({exc})") from exc
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"state store {url.render_as_string(hide_password=True)}: unsupported database "
            f"{backend!r} (use a SQLite path or a postgresql:// URL)"
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise StoreError(
            "state store: an in-memory SQLite database is not shared between connections; "
            "give a file path"
        )
    return url


def _describe(exc: BaseException) -> str:
    """A short message: the driver's own words, without SQL or SQLAlchemy's link."""
    inner = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip() or type(inner).__name__
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    first = text.splitlines()[0] if text else type(inner).__name__
    return f"{first} ({type(inner).__name__})"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for the migrations shipped in this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "gitswarm.store:migrations")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


class _FairLock:
    """A reentrant lock handed to its waiters in the order they came (``threading.Lock``
    is not fair: a thread that releases and takes it again at once usually wins)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Lock]] = deque()

    def acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None:
                self._owner, self._depth = me, 1
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append((me, turn))
        granted = turn.acquire(timeout=timeout)
        with self._mutex:
            if granted or self._owner == me:  # handed over as the wait ran out
                return True
            self._waiters.remove((me, turn))
            return False

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a lock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            if not self._waiters:
                self._owner = None
                return
            self._owner, turn = self._waiters.popleft()
            self._depth = 1
            turn.release()


class Database:
    """One engine on the store's database, migrated to head when opened."""

    def __init__(
        self,
        location: str | None = None,
        *,
        clock: Clock = utcnow,
        busy_timeout: float = BUSY_TIMEOUT,
        lease_clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        boot: Callable[[], str | None] = boot_id,
    ) -> None:
        self.url = resolve_url(location or default_location())
        self.display = self.url.render_as_string(hide_password=True)
        self._clock = clock
        self._lease_clock = lease_clock
        self._monotonic = monotonic
        self._boot = boot
        # This thread's transaction of ``atomic``, which its writes join (one per thread:
        # the agent's workers write at once, each in its own).
        self._atomic = threading.local()
        self._errors: tuple[type[BaseException], ...] = (
            sa.exc.SQLAlchemyError,
            sqlite3.Error,
            OSError,
        )
        self._busy_timeout = busy_timeout
        with self.translate("open"):
            self.engine = self._create_engine(busy_timeout)
            self._write_gate = _FairLock() if self.dialect == "sqlite" else None
            dbapi = self.engine.dialect.loaded_dbapi
            self._errors += (dbapi.Error,)
            self._writer = self.engine.execution_options(**{_WRITE: True})
            # A read sees one snapshot: SQLite's deferred BEGIN gives it; PostgreSQL needs
            # REPEATABLE READ (read-only, so it never fails to serialise).
            self._reader = (
                self.engine.execution_options(isolation_level="REPEATABLE READ")
                if self.dialect == "postgresql"
                else self.engine
            )
            try:
                self._migrate()
            except BaseException:
                self.engine.dispose()
                raise

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _create_engine(self, busy_timeout: float) -> sa.Engine:
        if self.url.get_backend_name() == "sqlite":
            parent = Path(self.url.database or "").parent  # resolve_url refused no file
            if not parent.exists():
                parent.mkdir(parents=True, mode=0o700)
            engine = sa.create_engine(
                self.url,
                hide_parameters=True,
                connect_args={"timeout": busy_timeout, "check_same_thread": False},
            )
            timeout_ms = int(busy_timeout * 1000)

            @sa.event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
                    cursor.execute("PRAGMA journal_mode = WAL")
                    cursor.execute("PRAGMA foreign_keys = ON")
                finally:
                    cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _sqlite_begin(conn: sa.Connection) -> None:
                write = conn.get_execution_options().get(_WRITE, False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        return sa.create_engine(
            self.url,
            hide_parameters=True,
            pool_pre_ping=True,  # the agent outlives server restarts
            connect_args={"connect_timeout": 10, "application_name": "gitswarm"},
        )

    def _current_heads(self) -> set[str]:
        """The schema revisions recorded in the database; none for a new one."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return set()
            rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
            return {str(row[0]) for row in rows}

    def _migrate(self) -> None:
        """``alembic upgrade head``, serialised between processes opening the store at once:
        SQLite by the write lock of BEGIN IMMEDIATE, PostgreSQL by an advisory lock.

        Most opens find the schema current: that costs one read and no Alembic import."""
        current = self._current_heads()  # a read first: most opens find it current
        if current == {SCHEMA_HEAD}:
            return
        from alembic import command
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        self._errors += (CommandError,)
        cfg = alembic_config()
        scripts = ScriptDirectory.from_config(cfg)
        heads = set(scripts.get_heads())
        if current == heads:
            return
        known = {rev.revision for rev in scripts.walk_revisions()}
        if current - known:
            raise StoreError(
                f"state store {self.display}: its schema ({', '.join(sorted(current))}) is "
                f"newer than this gitswarm knows ({', '.join(sorted(heads))}): "
                "upgrade gitswarm"
            )
        with self._writer.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def translate(self, doing: str) -> Iterator[None]:
        """Turn database errors raised inside the block into ``StoreError``."""
        try:
            yield
        except self._errors as exc:
            raise StoreError(f"state store {self.display}: {doing}: {_describe(exc)}") from exc

    @contextmanager
    def read(self, doing: str) -> Iterator[sa.Connection]:
        """A read transaction: one consistent snapshot for the queries inside."""
        with self.translate(doing), self._reader.begin() as conn:
            yield conn

    @contextmanager
    def write(self, doing: str) -> Iterator[sa.Connection]:
        """A write transaction, committed when the block ends without an exception;
        inside ``atomic`` (this thread), part of that one."""
        joined: sa.Connection | None = getattr(self._atomic, "conn", None)
        if joined is not None:
            with self.translate(doing):
                yield joined
            return
        with self.translate(doing), self._gate(doing), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def atomic(self, doing: str) -> Iterator[None]:
        """Every write of this thread inside the block in one transaction: all of them
        land, or none (nested: the outer one counts). Reads inside still see what was
        committed before it."""
        if getattr(self._atomic, "conn", None) is not None:
            yield
            return
        with self.translate(doing), self._gate(doing), self._writer.begin() as conn:
            self._atomic.conn = conn
            try:
                yield
            finally:
                self._atomic.conn = None

    @contextmanager
    def _gate(self, doing: str) -> Iterator[None]:
        """This process's writers of a SQLite store, one at a time, in the order they
        came. SQLite's busy handler polls with sleeps of up to 100 ms, so among the
        threads of one process waiting for its write lock the one that just committed
        tends to win again and one waiter can starve (seen: a webhook answered after
        over 30 s in a burst of 100 while the median waited 10 ms). The busy timeout
        still serialises against other processes. PostgreSQL queues its waiters itself."""
        if self._write_gate is None:
            yield
            return
        if not self._write_gate.acquire(timeout=self._busy_timeout):
            raise StoreError(
                f"state store {self.display}: {doing}: another writer in this process held "
                f"the store for over {self._busy_timeout:g} s"
            )
        try:
            yield
        finally:
            self._write_gate.release()

    def now(self) -> datetime:
        return self._aware(self._clock())

    @staticmethod
    def _aware(now: datetime) -> datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the store's clock must return aware datetimes")
        return now.astimezone(UTC)

    def instant(self) -> Instant:
        """Now, for a record that a duration will be measured from (model/instant.py)."""
        return Instant(self.now(), self._boot(), self._monotonic())

    def lease_now(self) -> datetime | sa.ColumnElement[datetime]:
        """ "Now" for leases (store/locks.py). PostgreSQL: the server's clock, in the
        statement itself, so that every agent sharing the store, on whatever host, means
        the same instant by a lease's end: a host whose clock steps forward neither
        drops its own leases nor takes over those of the others, one stepped back never
        hands out leases that are already over for everyone else. SQLite lives on one
        host, whose clock the store's ``clock`` is. ``lease_clock`` (tests) overrides.
        Browser sessions (store/accounts.py) and pending promotions (store/promotions.py)
        are dated and checked by the same clock, for the same reason."""
        if self._lease_clock is not None:
            return self._aware(self._lease_clock())
        if self.dialect == "postgresql":
            return sa.func.now(type_=sa.DateTime(timezone=True))
        return self.now()

    def shared_now(self) -> datetime:
        """``lease_now`` as a value, for a check made in Python rather than in a statement
        (pending promotions' expiry, promote/pipeline.py): PostgreSQL's clock, read with
        one ``SELECT now()``, so that agents on skewed hosts agree; SQLite's own clock."""
        now = self.lease_now()
        if isinstance(now, datetime):
            return now
        with self.read("read the database clock") as conn:
            value = conn.execute(sa.select(now)).scalar_one()
        return self._aware(value)

    def insert(self, table: sa.Table) -> pg.Insert | sqlite_dialect.Insert:
        """An INSERT that can take ``on_conflict_do_update`` on this database."""
        # the dialect modules load on first use: the PostgreSQL one pulls in asyncio
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as pg

            return pg.insert(table)
        from sqlalchemy.dialects import sqlite as sqlite_dialect

        return sqlite_dialect.insert(table)

    def close(self) -> None:
        self.engine.dispose()
