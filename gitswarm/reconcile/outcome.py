"""What a sync is asked (``SyncRequest``) and what it answers (``SyncOutcome``), and
what the first half of the pipeline hands the second (``Rendered``): plain values that
cli/, the agent (reconcile/agent/) and the recorder (record.py) exchange with
``Reconciler.sync`` (sync.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from gitswarm.errors import Reason
from gitswarm.health import Verdict
from gitswarm.model.config import Application, Environment, RepoConfig
from gitswarm.model.operation import OperationKind, OperationResult, Trigger
from gitswarm.model.policy import PolicyReport
from gitswarm.model.stack import DesiredStack, SourceMap
from gitswarm.plan import Plan, ServiceChange
from gitswarm.render.inputs import Inputs
from gitswarm.source.repo import CommitInfo


@dataclass(frozen=True)
class RollbackOf:
    """What a rollback sync undoes: the bad revision, why it is bad (its failure's
    reason, or RolledBack by hand), and how that reads in the status."""

    revision: str
    reason: Reason
    detail: str  # "failed (HealthTimeout: ...)" / "rolled back by hand (...)"


@dataclass(frozen=True)
class SyncRequest:
    app: str
    env: str
    revision: str | None = None  # None: the head of the followed branch
    trigger: Trigger = "cli"
    actor: str | None = None
    kind: OperationKind = "sync"
    dry_run: bool = False
    wait: bool = True
    heal: bool = True  # redeploy services that drifted from Git
    force_bad: bool = False  # deploy even a revision marked bad (an explicit request)
    lock_wait: float = 0.0
    message: str = ""
    override_window: str | None = None  # the reason for deploying outside a window
    # A rollback: the bad revision it undoes (the status says RolledBack; reconcile/
    # rollback.py's redeploy makes these).
    rollback_of: RollbackOf | None = None
    reverts: str = ""  # a heal: the drift it reverts, for the notification
    hold_for_window: bool = False  # the caller applies it when a closed window opens


@dataclass(frozen=True)
class SyncOutcome:
    app: str
    env: str
    revision: str | None
    result: OperationResult
    reason: Reason | None = None
    message: str = ""
    plan: Plan | None = None
    verdict: Verdict | None = None
    policy: PolicyReport | None = None
    operation_id: int | None = None
    problems: tuple[Any, ...] = ()
    exit_code: int = 0
    # Services changed on the swarm by someone else while this sync deployed them (a
    # `docker service scale` during the rollout): drift against what was applied.
    drifted: tuple[ServiceChange, ...] = ()
    # When a closed deployment window opens next: the same request can succeed then.
    retry_at: dt.datetime | None = None
    # What was rendered, for the agent's drift checks of the revision it just deployed
    # (so the first drift round after a commit renders nothing again). Never serialised.
    rendered: Rendered | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.result in ("Succeeded", "Skipped")

    @property
    def retryable(self) -> bool:
        """Whether the same request can succeed later (an engine that was unreachable, a
        lock still held): the agent tries again with backoff. Bad input (a render
        failure, a stack the engine refused) waits for a new commit."""
        return self.reason is not None and self.reason.transient

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "revision": self.revision,
            "result": self.result,
            "reason": self.reason,
            "message": self.message,
            "operation_id": self.operation_id,
            "plan": self.plan.as_dict() if self.plan else None,
            "health": self.verdict.as_dict() if self.verdict else None,
            "policy": self.policy.to_dict() if self.policy else None,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass
class Rendered:
    """What the first half of the pipeline produced for one app and environment."""

    revision: str
    commit: CommitInfo
    config: RepoConfig
    app: Application
    env: Environment
    desired: DesiredStack
    policy: PolicyReport | None
    # What the render read (render/inputs.py) and their digest with the settings that
    # matter to it (Reconciler.input_digest): a revision with the same digest renders
    # the same stack. None: never the same (a working tree; Rego that reads the commit).
    inputs: Inputs | None = field(default=None, repr=False, compare=False)
    digest: str | None = None

    def moved_to(self, revision: str, commit: CommitInfo, config: RepoConfig) -> Rendered:
        """This render, as that of ``revision`` whose inputs are the same (its digest)."""
        return replace(
            self,
            revision=revision,
            commit=commit,
            config=config,
            app=config.application(self.app.name),
            env=config.environment(self.env.name),
            desired=replace(self.desired, revision=revision),
        )

    def kept(self) -> Rendered:
        """This render as the agent keeps it after the deploy (one per app x env, for
        the drift and health rounds and the next commit's digests): without the source
        position of every node of the compose document, about half its memory (30 MB at
        1,000 apps; bench/ issue 18), read only by validation and its messages while the
        render is made."""
        if not self.desired.source_map.locations:
            return self
        return replace(self, desired=replace(self.desired, source_map=SourceMap()))


def drift_summary(drifted: tuple[ServiceChange, ...]) -> str:
    """``worker (deploy.replicas: 1 -> 3)``, for messages."""
    parts = []
    for change in drifted:
        fields = ", ".join(
            f"{d['field']}: {d['before']!r} -> {d['after']!r}" for d in change.as_dict()["drift"]
        )
        text = fields or "removed"
        if change.note and change.note != "missing":  # the spec-hash label rewritten, ...
            text = f"{text}; {change.note}"
        parts.append(f"{change.service} ({text})")
    return "; ".join(parts)


__all__ = ["Rendered", "RollbackOf", "SyncOutcome", "SyncRequest", "drift_summary"]
