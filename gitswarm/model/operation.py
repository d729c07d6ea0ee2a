"""What the state store hands back: operations, statuses, baselines, leases, promotions.

store/ writes and reads these records; reconcile/, api/ and cli/ read them.
They are plain frozen values (never ORM objects) and carry no secret values: callers
put none into the store, so none can come back out.

Timestamps are timezone-aware UTC. Record ids are integers, increasing in insert order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

OperationKind = Literal[
    "sync", "rollback", "drift", "heal", "promotion", "approval", "policy-violation"
]
Trigger = Literal["cli", "poll", "webhook", "api", "user", "agent"]
OperationResult = Literal["Running", "Succeeded", "Failed", "RolledBack", "Interrupted", "Skipped"]
ChangeAction = Literal["created", "changed", "removed", "unchanged"]
SyncStatus = Literal["Synced", "OutOfSync", "Unknown"]
HealthStatus = Literal["Healthy", "Progressing", "Degraded", "Missing", "Unknown"]
PromotionStatus = Literal["pending", "approved", "rejected", "committed", "failed", "expired"]
DecisionKind = Literal["approve", "reject"]

OPERATION_KINDS: tuple[OperationKind, ...] = get_args(OperationKind)
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
OPERATION_RESULTS: tuple[OperationResult, ...] = get_args(OperationResult)
CHANGE_ACTIONS: tuple[ChangeAction, ...] = get_args(ChangeAction)
SYNC_STATUSES: tuple[SyncStatus, ...] = get_args(SyncStatus)
HEALTH_STATUSES: tuple[HealthStatus, ...] = get_args(HealthStatus)
PROMOTION_STATUSES: tuple[PromotionStatus, ...] = get_args(PromotionStatus)
DECISIONS: tuple[DecisionKind, ...] = get_args(DecisionKind)

# Operations that put a revision on the swarm: a Succeeded one means that revision ran healthy.
DEPLOY_KINDS: tuple[OperationKind, ...] = ("sync", "rollback", "heal")


@dataclass(frozen=True, slots=True)
class ServiceChange:
    """What one operation did (or, for a dry run, would do) to one service."""

    service: str
    action: ChangeAction
    fields: tuple[str, ...] = ()  # dotted paths of the spec fields that changed


@dataclass(frozen=True, slots=True)
class DeployedCommit:
    """One commit a deployment brought to an environment (``git log previous..revision``
    when the sync finished): the lead-time facts of DORA (gitswarm/dora/)."""

    sha: str
    committed_at: datetime  # the committer date, as Git has it
    subject: str = ""  # the first line of the message (bounded), for fix-forward markers


@dataclass(frozen=True, slots=True)
class Operation:
    """One recorded sync, rollback, drift, heal, promotion, approval or policy violation."""

    id: int
    kind: OperationKind
    app: str
    env: str
    trigger: Trigger
    started_at: datetime
    result: OperationResult
    holder: str | None = None  # the process (lock holder) that ran it
    actor: str | None = None  # the user behind the trigger, when there is one
    revision: str | None = None
    previous_revision: str | None = None
    author: str | None = None  # of the commit
    commit_time: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None  # a gitswarm.errors.Reason's value (older rows: any string)
    message: str = ""
    dry_run: bool = False
    changes: tuple[ServiceChange, ...] = ()
    # The commits a deployment brought (store/operations.py loads them only when asked).
    commits: tuple[DeployedCommit, ...] = ()

    @property
    def running(self) -> bool:
        return self.result == "Running"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None while running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The one JSON form of an operation: the API, ``history --json`` and ``history
        export`` all write this."""
        return {
            "id": self.id,
            "kind": self.kind,
            "app": self.app,
            "env": self.env,
            "revision": self.revision,
            "previous_revision": self.previous_revision,
            "result": self.result,
            "reason": self.reason,
            "message": self.message,
            "trigger": self.trigger,
            "actor": self.actor,
            "holder": self.holder,
            "author": self.author,
            "commit_time": _iso(self.commit_time),
            "started_at": self.started_at.isoformat(),
            "finished_at": _iso(self.finished_at),
            "dry_run": self.dry_run,
            "changes": [
                {"service": c.service, "action": c.action, "fields": list(c.fields)}
                for c in self.changes
            ],
            "commits": [
                {"sha": c.sha, "committed_at": c.committed_at.isoformat(), "subject": c.subject}
                for c in self.commits
            ],
        }


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A live lease on a named lock."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AgentSource:
    """What the active agent last saw of Git, written after each of its polls: what
    ``gitswarm status`` shows beside the statuses the agent recorded (store/source.py)."""

    holder: str  # the agent (lease holder) that wrote it
    updated_at: datetime  # its last poll, answered or not: when it last recorded
    head: str | None = None  # the followed branch's head at its last good poll
    apps: tuple[tuple[str, str, str], ...] = ()  # (app, env, stack) it watches at head
    polled_at: datetime | None = None  # its last poll that the remote answered
    error: str | None = None  # the last poll's error, until a poll succeeds


@dataclass(frozen=True, slots=True)
class Baseline:
    """A service's live spec as gitswarm saw it right after its own deploy: what drift
    detection compares the swarm against."""

    app: str
    env: str
    service: str
    spec: Mapping[str, Any]  # normalised live spec (references to secrets, never values)
    version: int  # Swarm's version index of the service after the deploy
    spec_hash: str
    revision: str | None
    updated_at: datetime
    # The compose service as rendered for that deploy, so the next plan can name the
    # rendered fields a commit changes.
    rendered: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppStatus:
    """The current state of one application in one environment, as Argo CD shows it."""

    app: str
    env: str
    sync: SyncStatus
    health: HealthStatus
    updated_at: datetime
    last_result: OperationResult | None = None
    operation_id: int | None = None  # the last operation
    revision: str | None = None
    reason: str | None = None
    message: str = ""
    drift: Mapping[str, Any] = field(default_factory=dict)  # service -> what drifted

    def as_dict(self) -> dict[str, Any]:
        """The one JSON form of a stored status (the API adds Git's head and the source's
        state; ``gitswarm status`` shows the live one, reconcile/status.py)."""
        return {
            "app": self.app,
            "env": self.env,
            "sync": self.sync,
            "health": self.health,
            "deployed": self.revision,
            "last_result": self.last_result,
            "operation_id": self.operation_id,
            "reason": self.reason,
            "message": self.message,
            "drift": dict(self.drift),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """One user's approval or rejection of a promotion."""

    promotion_id: int
    user: str
    decision: DecisionKind
    comment: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Promotion:
    """A request to move images from one environment to the next."""

    id: int
    app: str
    from_env: str
    to_env: str
    images: Mapping[str, str]  # image name -> tag or reference to promote
    status: PromotionStatus
    requested_by: str
    created_at: datetime
    updated_at: datetime
    gates: Sequence[Mapping[str, Any]] = ()  # each gate's result, as the promotion records it
    commit_sha: str | None = None
    message: str = ""
    decisions: tuple[Decision, ...] = ()

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(d.user for d in self.decisions if d.decision == "approve")

    @property
    def rejected_by(self) -> tuple[str, ...]:
        return tuple(d.user for d in self.decisions if d.decision == "reject")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what to which object, from the API or the CLI."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": dict(self.details),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
