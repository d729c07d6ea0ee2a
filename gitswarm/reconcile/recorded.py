"""The status of every app × environment as the active agent recorded it: ``gitswarm
status``'s answer while an agent holds the store's lease (cli/ops.py), as ``argocd app
list`` reads the controller's recorded status instead of comparing live. No Git, no
render, no Docker: four reads of the store (the lease, what the agent saw of Git, the
statuses, the holds), whatever the number of apps.

What the agent keeps current, and where:
    sync, health, last operation, revision, reason, message   at the end of every sync
                                                              (reconcile/record.py)
    drift (the fields changed by hand)   Docker events and the drift round (agent/drift.py)
    head, the apps × environments it watches there, its last poll and that poll's error
                                         after every poll (agent/gitpoll.py)
Derived here: an app whose deployed revision is not the head the agent saw, and which
no sync runs for now, is OutOfSync ("Git's head ... is not deployed"); an app the agent
watches but never recorded is Unknown. What only a live read has — each service's
tasks, orphaned services, the plan — ``gitswarm status --live`` shows (status.py).

``StatusRow`` is the one shape of a status row, recorded or live (status.py's
``LiveStatus`` is this class); this module stays light (no render, plan or Docker
import) so the recorded path starts at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gitswarm.model.operation import AppStatus, HealthStatus, SyncStatus
from gitswarm.model.promotion import Hold
from gitswarm.model.reads import StatusReads
from gitswarm.store.location import AGENT_LOCK

if TYPE_CHECKING:
    from gitswarm.errors import GitswarmError
    from gitswarm.plan import Plan


@dataclass(frozen=True)
class StatusRow:
    app: str
    env: str
    stack: str | None
    head: str | None  # the revision Git says should run
    deployed: str | None  # the revision gitswarm last deployed successfully
    sync: SyncStatus
    health: HealthStatus
    last_result: str | None = None
    reason: str | None = None
    message: str = ""
    plan: Plan | None = None
    services: tuple[dict[str, Any], ...] = ()
    drift: tuple[dict[str, Any], ...] = ()
    orphans: tuple[str, ...] = ()
    error: GitswarmError | None = field(default=None, compare=False)
    updated_at: datetime | None = None  # recorded rows: when the agent last wrote it

    def as_dict(self) -> dict[str, Any]:
        found = {
            "app": self.app,
            "env": self.env,
            "stack": self.stack,
            "head": self.head,
            "deployed": self.deployed,
            "sync": self.sync,
            "health": self.health,
            "last_result": self.last_result,
            "reason": self.reason,
            "message": self.message,
            "services": list(self.services),
            "drift": list(self.drift),
            "orphans": list(self.orphans),
            "plan": self.plan.as_dict() if self.plan else None,
            "error": self.error.as_dict() if self.error else None,
        }
        if self.updated_at is not None:
            found["updated_at"] = self.updated_at.isoformat()
        return found


@dataclass(frozen=True)
class Recorded:
    """What the agent ``holder`` recorded: its rows, and when it last recorded
    (``observed_at``: its last poll, answered or not)."""

    holder: str
    observed_at: datetime
    head: str | None
    polled_at: datetime | None
    error: str | None  # the agent's last poll failed: this, and the head is older
    rows: tuple[StatusRow, ...]
    holds: dict[tuple[str, str], list[Hold]]


def recorded(reads: StatusReads, env: str | None = None, app: str | None = None) -> Recorded | str:
    """The statuses the agent holding the lease recorded (of ``env``/``app`` when
    given); or, when there is none to trust, why (then status reads live)."""
    lease = reads.lock_holder(AGENT_LOCK)
    if lease is None:
        return "no agent holds the store's lease"
    source = reads.agent_source(AGENT_LOCK)
    if source is None or source.holder != lease.holder:
        return f"agent {lease.holder} holds the store's lease but has recorded no poll yet"
    statuses = {(s.app, s.env): s for s in reads.all_statuses()}
    wanted = [(a, e, stack) for a, e, stack in source.apps if env in (None, e) and app in (None, a)]
    rows = tuple(row(a, e, stack, source.head, statuses.get((a, e))) for a, e, stack in wanted)
    holds: dict[tuple[str, str], list[Hold]] = {(r.app, r.env): [] for r in rows}
    for hold in reads.holds():
        if (hold.app, hold.env) in holds:
            holds[(hold.app, hold.env)].append(hold)
    return Recorded(
        lease.holder, source.updated_at, source.head, source.polled_at, source.error, rows,
        holds,
    )  # fmt: skip


def row(app: str, env: str, stack: str, head: str | None, status: AppStatus | None) -> StatusRow:
    """One app × environment as recorded, against the head the agent saw."""
    if status is None:
        return StatusRow(
            app, env, stack, head, None, "Unknown", "Unknown",
            message="watched by the agent; no sync of it recorded yet",
        )  # fmt: skip
    sync, message = status.sync, status.message
    behind = head is not None and status.revision != head and status.last_result != "Running"
    if behind:
        sync = "OutOfSync"
        if not status.reason:
            deployed = (status.revision or "-")[:12]
            message = (
                f"Git's head {head[:12] if head else '-'} is not deployed (deployed {deployed})"
            )
    return StatusRow(
        app,
        env,
        stack,
        head,
        status.revision,
        sync,
        status.health,
        status.last_result,
        status.reason,
        message,
        drift=drift_rows(status.drift.items()),
        updated_at=status.updated_at,
    )


def drift_rows(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The recorded drift (service -> its plan change) as the live rows have it."""
    return tuple(
        {**detail, "service": detail.get("service", service)}
        if isinstance(detail, dict)
        else {"service": service, "drift": [], "note": str(detail)}
        for service, detail in sorted(items)
    )


__all__ = ["Recorded", "StatusRow", "recorded", "row"]
