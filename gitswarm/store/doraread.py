"""The read DORA metrics are computed from, as SQL text run on a DB-API connection: one
code for the three ways to reach the store. ``Store.dora`` (the agent's ``GET
/api/v1/dora``) runs it on the connection under SQLAlchemy; quick.py runs it for
`gitswarm dora` on a connection of its own (sqlite3, or psycopg2 directly), which then
never imports SQLAlchemy: its import alone took a third of the command's second. The
rows become the plain tuples of ``gitswarm.dora.compute.Row`` (no record per row) that
``compute_rows`` reads. No SQLAlchemy here.

What is read of ``env`` (``app``) from ``start`` (the window's start less the failure
window) to ``until``, by ``ix_operations_env_started_at``, keeping only what can change
a figure by the operation's own columns (``changed``, migration 0007, says whether it
changed something): every deployment (a sync or rollback that changed something, or
failed after reaching the swarm), every successful heal, every drift record, and after
each failed deployment (and each drift record naming no services) the next healthy
state — not the many syncs that changed nothing between them. Then, per application
(every one the store has records of: one that has left Git, and so has no status, keeps
its past), what the window's start cuts: the last deployment or healthy state before it
when that is a failure still unrestored (an incident open at the start) or ran past it
(a deployment counts when it finished), and a drift still open. Then the services
changed and the commits brought, of just those rows, by id. bench/dora.py measures it
at a million operations; bench/README.md has the plans.

Values are bound, never put into the text, but for ids the store handed out and the
module's own constants (kinds, reasons), checked before they are written in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from gitswarm.dora.compute import (
    DEPLOY_FAILURE_REASONS,
    DEPLOYMENT_KINDS,
    DRIFT_RESOLVED,
    HEALTHY_KINDS,
    Commit,
    Row,
)
from gitswarm.store.queries import pyformat

Dialect = Literal["sqlite", "postgresql"]

# Ids per ``IN (...)``: rendered into the statement (integers the store handed out), so
# no backend's bound on parameters applies (SQLite's may be 999). (10,000, one statement
# for a month at 1 M operations instead of four, cost PostgreSQL more CPU, not less.)
_CHUNK = 2000
_CONSTANT = re.compile(r"^[A-Za-z][A-Za-z-]*$")


class Cursor(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


def _names(values: Iterable[str]) -> str:
    """``'a', 'b'``: constants of this package (kinds, reasons), checked."""
    out = []
    for value in sorted(values):
        if not _CONSTANT.match(value):
            raise ValueError(f"not a constant name: {value!r}")
        out.append(f"'{value}'")
    return ", ".join(out)


DEPLOYING = f"kind IN ({_names(DEPLOYMENT_KINDS)})"
_REASONS = _names(DEPLOY_FAILURE_REASONS)
FAILED = f"(result = 'RolledBack' OR (result = 'Failed' AND reason IN ({_REASONS})))"
HEALTHY = f"(kind IN ({_names(HEALTHY_KINDS)}) AND result = 'Succeeded')"
_RESOLVED = _names([DRIFT_RESOLVED])
# Recorded with a revision, a commit time and an actor or the process that ran it
# (compute._traceable of a record: '' and NULL are both nothing).
TRACEABLE = (
    "CASE WHEN revision <> '' AND commit_time IS NOT NULL "
    "AND (actor <> '' OR holder <> '') THEN 1 ELSE 0 END"
)
COLUMNS = f"id, kind, app, result, reason, started_at, finished_at, revision, {TRACEABLE}, changed"


def _on(alias: str, condition: str) -> str:
    """``condition`` (over this module's bare column names) on table alias ``alias``."""
    return re.sub(
        r"(?<![:.\w])(id|kind|app|env|result|reason|started_at|dry_run|changed)\b",
        rf"{alias}.\1",
        condition,
    )


class Reader:
    """Runs this module's SQL on one DB-API connection's cursor: ``:name`` parameters
    and aware datetimes in, tuples out, whatever the driver."""

    def __init__(self, cursor: Cursor, dialect: Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[Any]:
        bound = dict(params or {})
        if self.dialect == "sqlite":
            for name, value in bound.items():
                if isinstance(value, datetime):
                    bound[name] = _sqlite_text(value)
        else:  # psycopg 3 (the Store's) and psycopg2 (quick.py's): %(name)s
            sql = pyformat(sql)
        self.cursor.execute(sql, bound)
        return list(self.cursor.fetchall())

    def begin(self) -> None:
        """For this transaction (PostgreSQL): times in UTC (their dates are the report's
        days), and no parallel workers: for the window's few thousand rows starting
        them cost more than they saved (97 against 71 ms at 1 M operations)."""
        if self.dialect == "postgresql":  # (one round trip: SET LOCAL, twice)
            self.cursor.execute(
                "SELECT set_config('TimeZone', 'UTC', true), "
                "set_config('max_parallel_workers_per_gather', '0', true)"
            )

    def time(self, value: Any) -> datetime:
        """A time from a row: SQLite keeps naive UTC text; PostgreSQL (the session set
        to UTC, see ``begin``) gives aware datetimes."""
        if isinstance(value, str):
            return _from_text(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a time from the database, got {value!r}")
        return value

    def times(self) -> Callable[[Any], datetime]:
        """``time`` for many values of one driver: SQLite's text parsed, PostgreSQL's
        datetimes as they are (its driver made them; 30,000 checks saved)."""
        return _from_text if self.dialect == "sqlite" else _same


def _from_text(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # (.replace(tzinfo=UTC) costs 5x)


def _same(value: datetime) -> datetime:
    return value


def _sqlite_text(value: datetime) -> str:
    """An aware time as the store keeps it in SQLite (queries.sqlite_time)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no time zone")
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for at in range(0, len(ids), _CHUNK):
        yield ids[at : at + _CHUNK]


def _by_ids(column: str, ids: Sequence[int]) -> str:
    """``column IN ids`` (ids ascending), bounded by the first and the last: with a long
    list PostgreSQL's planner would rather scan the whole table than probe its index so
    many times; the range makes the index the cheap way for it too (ids of one window
    lie close together)."""
    listed = ", ".join(str(int(i)) for i in ids)
    return f"{column} >= {int(ids[0])} AND {column} <= {int(ids[-1])} AND {column} IN ({listed})"


def _window(scope: str) -> str:
    """The operations of ``scope`` started in ``[start, until]`` that can change a figure
    by their own columns."""
    wanted = (
        f"({DEPLOYING} AND ((result = 'Succeeded' AND changed > 0) OR {FAILED})) "
        "OR (kind = 'heal' AND result = 'Succeeded') OR kind = 'drift'"
    )
    return (
        f"SELECT {COLUMNS} FROM operations WHERE {scope} AND started_at >= :start "  # noqa: S608
        f"AND started_at <= :until AND NOT dry_run AND ({wanted}) ORDER BY id"
    )


# After each of some operations (by id), the next healthy state of its app: what ends
# the incident of a failed deployment, and a drift record naming no services (written
# before they were recorded). By the ids already read, not by the window again: a
# second pass over it cost as much as the first (PostgreSQL: 117 ms at 1 M). (Not the
# rows themselves in the same statement: ``id IN (this)`` made PostgreSQL evaluate
# the subquery twice per id.)
_NEXT_HEALTHY = (
    "SELECT (SELECT min(a.id) FROM operations a WHERE a.app = r.app AND a.env = r.env "  # noqa: S608
    f"AND a.id > r.id AND {_on('a', HEALTHY)} AND NOT a.dry_run AND a.started_at <= :until) "
    "FROM operations r WHERE {ids}"
)


# Of one app: the last deployment or healthy state before the window's start, walking
# ix_operations_env_started_at back from the start (a few rows: most operations are
# healthy). ``app || ''`` keeps the planners off the app indexes, which would visit
# every operation of the app in the window first (SQLite: 0.2 s an app at 1 M).
_LAST_BEFORE = (
    "SELECT app, id, result, finished_at FROM operations WHERE env = :env "  # noqa: S608
    "AND app || '' = :app AND started_at < :start AND NOT dry_run "
    f"AND ({HEALTHY} OR ({DEPLOYING} AND {FAILED})) ORDER BY started_at DESC, id DESC LIMIT 1"
)
# Of one app: its last drift record before the window's start (migration 0007's
# ix_operations_app_env_kind_id), what may have ended it, the deployments after it.
_LAST_DRIFT = (
    "SELECT app, id, changed, started_at FROM operations WHERE app = :app AND env = :env "  # noqa: S608
    "AND NOT dry_run AND kind = 'drift' AND started_at < :start "
    f"AND (reason IS NULL OR reason <> {_RESOLVED}) ORDER BY id DESC LIMIT 1"
)
_DRIFT_ENDER = (
    "SELECT app, id, started_at FROM operations WHERE app = :app AND env = :env "  # noqa: S608
    "AND NOT dry_run AND id > :after AND result = 'Succeeded' AND (kind = 'heal' "
    f"OR (kind = 'drift' AND reason = {_RESOLVED}) OR (:unnamed = 1 AND kind IN "
    f"({_names(HEALTHY_KINDS)}))) ORDER BY id LIMIT 1"
)
# (from the drift record to the start by ix_operations_env_started_at, as above)
_DEPLOYED_BEFORE = (
    "SELECT id FROM operations WHERE env = :env AND started_at >= :began "  # noqa: S608
    "AND started_at < :start AND app || '' = :app AND NOT dry_run AND id > :after "
    f"AND result = 'Succeeded' AND {DEPLOYING} AND changed > 0"
)
# Every application the store has a record of, one index seek each (from one name to
# the next on an index that begins with app): an app that left Git keeps its history,
# not its status.
_APPS = (
    "WITH RECURSIVE names(app) AS (SELECT min(app) FROM operations UNION ALL "
    "SELECT (SELECT min(o.app) FROM operations o WHERE o.app > names.app) FROM names "
    "WHERE names.app IS NOT NULL) SELECT app FROM names WHERE app IS NOT NULL"
)
# Of one app with nothing in the window's lean read and no status (it left Git, or
# never had one): as _LAST_BEFORE, walking its own ix_operations_app_env_id back from its
# newest record (what it has in the window are records the lean read skips: few).
_LAST_BEFORE_GONE = (
    "SELECT app, id, result, finished_at FROM operations WHERE app = :app AND env = :env "  # noqa: S608
    "AND started_at < :start AND NOT dry_run "
    f"AND ({HEALTHY} OR ({DEPLOYING} AND {FAILED})) ORDER BY id DESC LIMIT 1"
)
_PER_STATEMENT = 100  # apps per statement (SQLite takes up to 500 SELECTs in one)


def _each(
    db: Reader, sql: str, own: list[dict[str, object]], shared: dict[str, object]
) -> list[Any]:
    """``sql``, one app's query, for each of the parameter sets ``own`` (with the
    ``shared`` ones), as one statement per hundred: a round trip, not one per app."""
    out: list[Any] = []
    for at in range(0, len(own), _PER_STATEMENT):
        parts: list[str] = []
        params = dict(shared)
        for i, mine in enumerate(own[at : at + _PER_STATEMENT]):
            text = sql
            for name, value in mine.items():
                text = re.sub(rf":{name}\b", f":{name}_{i}", text)
                params[f"{name}_{i}"] = value
            parts.append(f"SELECT * FROM ({text}) AS q{i}")  # noqa: S608
        out += db.rows(" UNION ALL ".join(parts), params)
    return out


def _cut_at_start(
    db: Reader, env: str, apps: Iterable[str], start: datetime, sql: str = _LAST_BEFORE
) -> list[int]:
    """What the window's start cuts, per app: its last deployment or healthy state before
    ``start`` when that is a failure (an incident open at the start: failures inside
    continue it) or when it finished at or after ``start`` (a deployment counts by when
    it finished). A seek per app."""
    ids: list[int] = []
    shared: dict[str, object] = {"env": env, "start": start}
    for _, op_id, result, finished in _each(db, sql, [{"app": a} for a in sorted(apps)], shared):
        ended_later = finished is not None and db.time(finished) >= start
        if result != "Succeeded" or ended_later:
            ids.append(op_id)
    return ids


def _cut_at_start_gone(db: Reader, env: str, known: set[str], start: datetime) -> list[int]:
    """``_cut_at_start`` of the apps not in ``known``: those with nothing in the window's
    lean read and no status, such as an app that left Git after the window (its
    deployment finishing inside still counts: a past window's report does not change
    when it leaves), by its own index: from its newest record back."""
    gone = {a for (a,) in db.rows(_APPS)} - known
    return _cut_at_start(db, env, gone, start, _LAST_BEFORE_GONE) if gone else []


def _drift_open_at_start(db: Reader, env: str, apps: Iterable[str], start: datetime) -> list[int]:
    """What a drift of ``apps`` still open at ``start`` needs read with the window, so
    that it is one drift that began before it, not a new one at its first record inside.
    For each app: its last drift record before ``start``, unless a heal or a
    DriftResolved record (for a record naming no services: any healthy state) ended it
    before ``start``; with the deployments after it that may have redeployed some of its
    services, or, for one naming none, the healthy state that ended it later."""
    shared: dict[str, object] = {"env": env, "start": start}
    last = _each(db, _LAST_DRIFT, [{"app": a} for a in sorted(apps)], shared)
    enders = {
        app: (op_id, started)
        for app, op_id, started in _each(
            db, _DRIFT_ENDER,
            [{"app": app, "after": op_id, "unnamed": 0 if named else 1}
             for app, op_id, named, _ in last],
            shared,
        )
    }  # fmt: skip
    ids: list[int] = []
    deployed: list[dict[str, object]] = []
    for app, op_id, named, began in last:
        ender = enders.get(app)
        if ender is not None and db.time(ender[1]) < start:
            continue  # over before the window
        ids.append(op_id)
        if not named:
            ids.extend([ender[0]] if ender is not None else [])
        else:
            deployed.append({"app": app, "after": op_id, "began": began})
    ids.extend(i for (i,) in _each(db, _DEPLOYED_BEFORE, deployed, shared))
    return ids


def _with(db: Reader, found: list[Any], ids: Iterable[int]) -> list[Any]:
    """``found`` and the rows of ``ids`` not in it, by id."""
    more = sorted(set(ids) - {row[0] for row in found})
    if not more:
        return found
    for chunk in _chunks(more):
        found = found + db.rows(f"SELECT {COLUMNS} FROM operations WHERE {_by_ids('id', chunk)}")  # noqa: S608
    return sorted(found, key=lambda row: row[0])


def read(db: Reader, env: str, app: str | None, start: datetime, until: datetime) -> list[Row]:
    """The rows DORA needs of ``env`` (``app``) read from ``start`` to ``until``, oldest
    first."""
    for name, value in (("start", start), ("until", until)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} {value.isoformat()} has no time zone")
    db.begin()
    params: dict[str, object] = {"env": env, "start": start, "until": until}
    scope = "env = :env"
    if app is not None:
        scope += " AND app = :app"
        params["app"] = app
    found = db.rows(_window(scope), params)
    # The apps whose last deployment before the start may matter: those with records in
    # the window, and those the agent keeps a status of (a deployment running past the
    # start may be all an app has in the window).
    apps = {row[2] for row in found}
    if app is None:
        apps.update(
            a for (a,) in db.rows("SELECT app FROM app_status WHERE env = :env", {"env": env})
        )
    else:
        apps.add(app)
    drifting = {row[2] for row in found if row[1] == "drift" and row[4] != DRIFT_RESOLVED}
    cut = _cut_at_start(db, env, apps, start) + _drift_open_at_start(db, env, drifting, start)
    if app is None:
        cut += _cut_at_start_gone(db, env, apps, start)
    found = _with(db, found, cut)
    ending = [
        row[0]
        for row in found
        if (row[1] in DEPLOYMENT_KINDS and row[3] != "Succeeded")  # a failed deployment
        or (row[1] == "drift" and not row[9] and row[4] != DRIFT_RESOLVED)  # names none
    ]
    healthy: list[int] = []
    for chunk in _chunks(ending):
        sql = _NEXT_HEALTHY.format(ids=_by_ids("r.id", chunk))
        healthy += [i for (i,) in db.rows(sql, {"until": until}) if i is not None]
    found = _with(db, found, healthy)
    changing = [row[0] for row in found if row[9]]
    # (a failed deployment has no commits: the read finds none)
    deployed = [row[0] for row in found if row[9] and row[1] in DEPLOYMENT_KINDS]
    services: dict[int, set[str]] = {}
    for chunk in _chunks(changing):
        sql = (
            "SELECT operation_id, service FROM operation_changes "  # noqa: S608
            f"WHERE {_by_ids('operation_id', chunk)} AND action <> 'unchanged'"
        )
        for op_id, service in db.rows(sql):
            services.setdefault(op_id, set()).add(service)
    commits: dict[int, list[Commit]] = {}
    time = db.times()
    for chunk in _chunks(deployed):
        sql = (
            "SELECT operation_id, sha, committed_at, subject FROM operation_commits "  # noqa: S608
            f"WHERE {_by_ids('operation_id', chunk)}"
        )
        for op_id, sha, committed_at, subject in db.rows(sql):
            commits.setdefault(op_id, []).append((sha, time(committed_at), subject))
    none: frozenset[str] = frozenset()
    return [
        (
            op_id, kind, app_name, result, reason, time(started),
            None if finished is None else time(finished), revision, bool(traceable),
            frozenset(services[op_id]) if op_id in services else none,
            tuple(commits.get(op_id, ())),
        )
        for op_id, kind, app_name, result, reason, started, finished, revision, traceable, _
        in found
    ]  # fmt: skip
