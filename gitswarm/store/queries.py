"""The queries of the read-only commands, as SQL text, and the one way their rows become
records. No SQLAlchemy here.

The history listing (``Operation`` records), the statuses (``AppStatus``), an app's
baselines (``Baseline``) and holds (``Hold``): operations.py, status.py, baselines.py and
holds.py run them through SQLAlchemy (``Store.history``, ``get_status``,
``all_statuses``, ``baselines``, ``holds``, on SQLite
and PostgreSQL); quick.py runs the very same text through Python's sqlite3 for
``gitswarm history`` and ``status`` on a local store, which then never import SQLAlchemy
(its import alone takes longer than the rest of ``history``). One query, two drivers:
the two cannot drift apart, and tests/unit/test_store_quick.py checks that both return
the same records.

Values are always bound (``:name``, which both drivers take), never put into the text;
the text is built only from this module's fixed fragments. Rows come back as each driver
gives them (SQLite: times as naive UTC text, JSON as text, booleans as 0/1;
PostgreSQL: aware datetimes, decoded JSON, booleans), and :func:`operations_from` reads
either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from gitswarm.model.operation import (
    OPERATION_KINDS,
    AgentSource,
    AppStatus,
    Baseline,
    DeployedCommit,
    LockInfo,
    Operation,
    OperationKind,
    ServiceChange,
)
from gitswarm.model.promotion import Hold

T = TypeVar("T", bound=str)

OPERATION_COLUMNS = (
    "id",
    "kind",
    "app",
    "env",
    "trigger",
    "actor",
    "holder",
    "revision",
    "previous_revision",
    "author",
    "commit_time",
    "started_at",
    "finished_at",
    "result",
    "reason",
    "message",
    "dry_run",
    "finished_boot",
    "finished_mono",
)
# How SQLAlchemy's DateTime keeps a time in SQLite (schema.UTCDateTime: naive UTC text,
# which sorts as time does); test_store_quick checks that the two agree.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def check(value: T, allowed: Collection[str], what: str) -> T:
    """``value`` if it is one of ``allowed``; a ValueError naming them otherwise."""
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return value


def aware(value: datetime | None, what: str) -> datetime | None:
    """``value`` if it is None or time-zone aware: a naive time is ambiguous, refuse it."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} {value.isoformat()} has no time zone")
    return value


@dataclass(frozen=True, slots=True)
class Query:
    """SQL text with ``:name`` parameters; ``times`` names the parameters that hold
    aware datetimes (each driver stores a time its own way)."""

    sql: str
    params: dict[str, object] = field(default_factory=dict)
    times: frozenset[str] = frozenset()


_NAMED = re.compile(r"(?<![:\w]):([a-z_]\w*)")


def pyformat(sql: str) -> str:
    """This module's ``:name`` parameters as psycopg's ``%(name)s`` (a ``::`` cast and a
    ``'a:b'`` word inside a name are left alone)."""
    return _NAMED.sub(r"%(\1)s", sql)


def history(
    app: str | None = None,
    env: str | None = None,
    limit: int | None = 50,
    kinds: Iterable[OperationKind] | None = None,
    since: datetime | None = None,
) -> Query:
    """Operations, newest first: of ``app`` and ``env`` when given, of ``kinds``, started
    at or after ``since``, at most ``limit``."""
    where: list[str] = []
    params: dict[str, object] = {}
    times: set[str] = set()
    if app is not None:
        where.append("app = :app")
        params["app"] = app
    if env is not None:
        where.append("env = :env")
        params["env"] = env
    if kinds is not None:
        wanted = [check(k, OPERATION_KINDS, "operation kind") for k in kinds]
        names = [f"kind_{i}" for i in range(len(wanted))]
        params.update(zip(names, wanted, strict=True))
        where.append(f"kind IN ({', '.join(':' + n for n in names)})" if names else "1 = 0")
    if since is not None:
        where.append("started_at >= :since")
        params["since"] = aware(since, "since")
        times.add("since")
    sql = f"SELECT {', '.join(OPERATION_COLUMNS)} FROM operations"  # noqa: S608 - fixed text
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, not {limit}")
        sql += " LIMIT :limit"
        params["limit"] = limit
    return Query(sql, params, frozenset(times))


def changes(ids: Sequence[int]) -> Query:
    """The recorded service changes of the operations ``ids``."""
    names = [f"id_{i}" for i in range(len(ids))]
    return Query(
        "SELECT operation_id, service, action, fields FROM operation_changes "  # noqa: S608
        f"WHERE operation_id IN ({', '.join(':' + n for n in names) or 'NULL'}) "
        "ORDER BY operation_id, service",
        dict(zip(names, ids, strict=True)),
    )


STATUS_COLUMNS = (
    "app",
    "env",
    "sync",
    "health",
    "updated_at",
    "last_result",
    "operation_id",
    "revision",
    "reason",
    "message",
    "drift",
    "render_inputs",
    "render_digest",
)
BASELINE_COLUMNS = (
    "app",
    "env",
    "service",
    "spec",
    "rendered",
    "version",
    "spec_hash",
    "revision",
    "updated_at",
)


def statuses(app: str | None = None, env: str | None = None) -> Query:
    """The stored statuses (of ``app`` in ``env`` when both are given), by app then
    environment name."""
    sql = f"SELECT {', '.join(STATUS_COLUMNS)} FROM app_status"  # noqa: S608 - fixed text
    params: dict[str, object] = {}
    if app is not None and env is not None:
        sql += " WHERE app = :app AND env = :env"
        params = {"app": app, "env": env}
    elif app is not None or env is not None:
        raise ValueError("statuses: give both app and env, or neither")
    return Query(sql + " ORDER BY app, env", params)


def baselines(app: str, env: str) -> Query:
    """The baselines of every service of ``app`` in ``env``, by service name."""
    return Query(
        f"SELECT {', '.join(BASELINE_COLUMNS)} FROM baselines "  # noqa: S608 - fixed text
        "WHERE app = :app AND env = :env ORDER BY service",
        {"app": app, "env": env},
    )


HOLD_COLUMNS = (
    "id",
    "app",
    "env",
    "reason",
    "created_at",
    "created_by",
    "images",
    "operation_id",
    "from_revision",
    "to_revision",
    "released_at",
    "released_by",
    "release_reason",
)


def holds(app: str | None = None, env: str | None = None, active: bool | None = True) -> Query:
    """Holds after a rollback, newest first (``active=None``: released ones too)."""
    where: list[str] = []
    params: dict[str, object] = {}
    if app is not None:
        where.append("app = :app")
        params["app"] = app
    if env is not None:
        where.append("env = :env")
        params["env"] = env
    if active is True:
        where.append("released_at IS NULL")
    elif active is False:
        where.append("released_at IS NOT NULL")
    sql = f"SELECT {', '.join(HOLD_COLUMNS)} FROM promotion_holds"  # noqa: S608 - fixed text
    if where:
        sql += " WHERE " + " AND ".join(where)
    return Query(sql + " ORDER BY id DESC", params)


def holds_from(rows: Iterable[Mapping[Any, Any]]) -> list[Hold]:
    """``Hold`` records of hold rows."""
    return [
        Hold(
            id=row["id"],
            app=row["app"],
            env=row["env"],
            reason=row["reason"],
            created_at=_required_time(row["created_at"]),
            created_by=row["created_by"],
            images=dict(_json(row["images"])),
            operation_id=row["operation_id"],
            from_revision=row["from_revision"],
            to_revision=row["to_revision"],
            released_at=_time(row["released_at"]),
            released_by=row["released_by"],
            release_reason=row["release_reason"],
        )
        for row in rows
    ]


def _json(value: Any) -> Any:
    if value == "{}":  # the drift round's baselines without specs: 10,000 at 1,000 apps
        return {}
    return json.loads(value) if isinstance(value, str | bytes) else value


def statuses_from(rows: Iterable[Mapping[Any, Any]]) -> list[AppStatus]:
    """``AppStatus`` records of status rows."""
    return [
        AppStatus(
            app=row["app"],
            env=row["env"],
            sync=row["sync"],
            health=row["health"],
            updated_at=_required_time(row["updated_at"]),
            last_result=row["last_result"],
            operation_id=row["operation_id"],
            revision=row["revision"],
            reason=row["reason"],
            message=row["message"],
            drift=dict(_json(row["drift"])),
            render_inputs=_inputs(_json(row["render_inputs"])),
            render_digest=row["render_digest"],
        )
        for row in rows
    ]


def _inputs(value: Any) -> tuple[tuple[str, str], ...] | None:
    """The stored render inputs (a JSON list of [kind, path] pairs; null before 0008)."""
    if not isinstance(value, list):
        return None
    return tuple((str(kind), str(path)) for kind, path in value)


def baselines_from(rows: Iterable[Mapping[Any, Any]]) -> dict[str, Baseline]:
    """``Baseline`` records of baseline rows, by service name."""
    return {
        row["service"]: Baseline(
            app=row["app"],
            env=row["env"],
            service=row["service"],
            spec=_json(row["spec"]),
            rendered=_json(row["rendered"]),
            version=row["version"],
            spec_hash=row["spec_hash"],
            revision=row["revision"],
            updated_at=_required_time(row["updated_at"]),
        )
        for row in rows
    }


def lock_holder(name: str, now: datetime | None) -> Query:
    """The live lease on lock ``name`` at ``now`` (none when it ran out). ``now`` None:
    the database server's own clock, in the statement, as every lease statement of
    locks.py on PostgreSQL (``Database.lease_now``)."""
    if now is None:
        return Query(
            "SELECT name, holder, acquired_at, expires_at FROM locks "
            "WHERE name = :name AND expires_at > CURRENT_TIMESTAMP",
            {"name": name},
        )
    return Query(
        "SELECT name, holder, acquired_at, expires_at FROM locks "
        "WHERE name = :name AND expires_at > :now",
        {"name": name, "now": aware(now, "now")},
        frozenset({"now"}),
    )


def locks_from(rows: Iterable[Mapping[Any, Any]]) -> list[LockInfo]:
    """``LockInfo`` records of lock rows."""
    return [
        LockInfo(
            name=row["name"],
            holder=row["holder"],
            acquired_at=_required_time(row["acquired_at"]),
            expires_at=_required_time(row["expires_at"]),
        )
        for row in rows
    ]


AGENT_SOURCE_COLUMNS = ("name", "holder", "head", "apps", "polled_at", "error", "updated_at")


def agent_source(name: str) -> Query:
    """What the agent holding lock ``name`` last recorded of Git (store/source.py)."""
    return Query(
        f"SELECT {', '.join(AGENT_SOURCE_COLUMNS)} FROM agent_source "  # noqa: S608
        "WHERE name = :name",
        {"name": name},
    )


def agent_sources_from(rows: Iterable[Mapping[Any, Any]]) -> list[AgentSource]:
    """``AgentSource`` records of agent_source rows."""
    return [
        AgentSource(
            holder=row["holder"],
            updated_at=_required_time(row["updated_at"]),
            head=row["head"],
            apps=tuple((str(a), str(e), str(s)) for a, e, s in _json(row["apps"])),
            polled_at=_time(row["polled_at"]),
            error=row["error"],
        )
        for row in rows
    ]


def sqlite_time(value: datetime) -> str:
    """An aware time as SQLite keeps it in the store."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_TIME)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a time from the database, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _required_time(value: Any) -> datetime:
    found = _time(value)
    if found is None:
        raise TypeError("expected a time from the database, got NULL")
    return found


def operations_from(
    rows: Sequence[Mapping[Any, Any]],
    change_rows: Iterable[Mapping[Any, Any]] = (),
    commits: Mapping[int, Sequence[DeployedCommit]] | None = None,
) -> list[Operation]:
    """``Operation`` records of operation rows, with their changes (and commits)."""
    by_op: dict[int, list[ServiceChange]] = {}
    for change in change_rows:
        fields = change["fields"]
        if isinstance(fields, str | bytes):
            fields = json.loads(fields)
        by_op.setdefault(change["operation_id"], []).append(
            ServiceChange(service=change["service"], action=change["action"], fields=tuple(fields))
        )
    commits = commits or {}
    return [
        Operation(
            id=row["id"],
            kind=row["kind"],
            app=row["app"],
            env=row["env"],
            trigger=row["trigger"],
            started_at=_required_time(row["started_at"]),
            result=row["result"],
            holder=row["holder"],
            actor=row["actor"],
            revision=row["revision"],
            previous_revision=row["previous_revision"],
            author=row["author"],
            commit_time=_time(row["commit_time"]),
            finished_at=_time(row["finished_at"]),
            finished_boot=row["finished_boot"],
            finished_mono=row["finished_mono"],
            reason=row["reason"],
            message=row["message"],
            dry_run=bool(row["dry_run"]),
            changes=tuple(by_op.get(row["id"], ())),
            commits=tuple(commits.get(row["id"], ())),
        )
        for row in rows
    ]
