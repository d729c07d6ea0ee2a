"""The history listing's queries, as SQL text, and the one way their rows become
``Operation`` records. No SQLAlchemy here.

operations.py runs them through SQLAlchemy (``Store.history``, on SQLite and
PostgreSQL); quick.py runs the very same text through Python's sqlite3 for ``gitswarm
history`` on a local store, which then never imports SQLAlchemy (its import alone takes
longer than the rest of the command). One query, two drivers: the two cannot drift apart,
and tests/unit/test_store_quick.py checks that both return the same records.

Values are always bound (``:name``, which both drivers take), never put into the text;
the text is built only from this module's fixed fragments. Rows come back as each driver
gives them (SQLite: times as naive UTC text, JSON as text, booleans as 0/1;
PostgreSQL: aware datetimes, decoded JSON, booleans), and :func:`operations_from` reads
either.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from gitswarm.model.operation import (
    OPERATION_KINDS,
    DeployedCommit,
    Operation,
    OperationKind,
    ServiceChange,
)

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
