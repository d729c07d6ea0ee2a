"""Record what happened: history, app status, metrics and notifications, in one place.

``Recorder.finished`` is the last step of every sync (``Reconciler.sync``'s ``finally``:
reconcile/sync.py), whatever the outcome; the agent's drift checks record through
``drift_detected`` / ``drift_cleared`` / ``heal_paused``, and the drift round's health
check through ``health_changed`` (agent/health.py). Nothing else in gitswarm writes
an app's status, so what the CLI, the API, /metrics and the notifications say about an
app always comes from here:

    outcome                      status (sync, health, last result)     notification
    Succeeded                    Synced (OutOfSync: orphans, drift       sync_succeeded
                                 during the sync), Healthy, Succeeded    (when it changed
                                                                         something)
      a rollback (rollback_of)   OutOfSync (Git says another revision),  + rollback
                                 Healthy, RolledBack, the bad one's
                                 reason
      a heal (kind heal)         as Succeeded                            + drift_healed
    Skipped (RevisionMarkedBad)  reason and message only
    Failed                       OutOfSync, Failed; Degraded when the    policy_violation,
                                 reason degrades (reached the swarm)     signature_rejected
                                                                         or sync_failed
      window closed, held        "waiting for the deployment window"
    Locked                       nothing: the running sync's record counts

Bad input that stopped before an operation started is still recorded (a policy
violation as the ``policy-violation`` kind). Failures are notified once per distinct
failure (the store's fingerprints). Every write goes through the Reconciler's journal
(journal.py): a write the store refuses (locked, disk full, down) never raises and is
never lost — it is said loudly, kept in order and written again until the store takes
it; the outcome stands meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gitswarm.errors import GitswarmError, Reason
from gitswarm.model.events import Event, EventKind
from gitswarm.model.operation import DeployedCommit, HealthStatus, SyncStatus
from gitswarm.model.operation import ServiceChange as RecordedChange
from gitswarm.notify import Notifier
from gitswarm.plan import Plan
from gitswarm.reconcile.journal import Journal
from gitswarm.reconcile.outcome import Rendered, SyncOutcome, SyncRequest
from gitswarm.reconcile.rendering import stored_digest
from gitswarm.source.repo import RepoSource

if TYPE_CHECKING:  # prometheus_client: only the agent keeps metrics
    from gitswarm.reconcile.metrics import Metrics
    from gitswarm.store import Store  # SQLAlchemy: status reads a local store without it

log = logging.getLogger("gitswarm.sync")


def recorded_changes(plan: Plan) -> list[RecordedChange]:
    actions = {"create": "created", "update": "changed", "remove": "removed"}
    out: list[RecordedChange] = []
    for change in plan.services:
        action = actions.get(change.action, "unchanged")
        fields = tuple(f.path for f in (change.fields or change.drift))
        out.append(RecordedChange(change.service, action, fields))  # type: ignore[arg-type]
    return out


@dataclass
class Recorder:
    store: Store
    source: RepoSource
    notifier: Notifier | None = None
    metrics: Metrics | None = None
    # The Reconciler's (one per process): writes the store refused wait there, in order.
    journal: Journal = field(default_factory=Journal)

    # --- the end of every sync ---------------------------------------------------------

    def finished(
        self, req: SyncRequest, outcome: SyncOutcome, op_id: int | None, seconds: float
    ) -> SyncOutcome:
        """Record ``outcome`` of ``req`` (``op_id``: its started operation, if any; the
        sync took ``seconds``). Returns it, with the operation id of a rejected one."""
        fields = {
            "app": req.app,
            "env": req.env,
            "revision": outcome.revision,
            "result": outcome.result,
            "reason": outcome.reason,
            "trigger": req.trigger,
            "kind": req.kind,
        }
        level = logging.INFO if outcome.ok else logging.WARNING
        log.log(level, "%s %s: %s", req.kind, outcome.result, outcome.message, extra=fields)
        self._count(req, outcome, op_id, seconds)
        if outcome.reason is Reason.LOCKED:
            return outcome  # another sync is running: its record is the one that counts
        what = f"{req.kind} of {req.app}/{req.env} at {(outcome.revision or '-')[:12]}"
        # The end of the operation and the status after it are written together, in one
        # transaction: whoever sees the operation finished (a client polling history,
        # the fault tests) sees the status after it, never the one before.
        writes: list[tuple[str, Callable[[], object]]] = []
        if op_id is not None:
            changes = recorded_changes(outcome.plan) if outcome.plan else []
            message = f"{req.message}: {outcome.message}" if req.message else outcome.message
            commits = self._deployed_commits(req, outcome, op_id)  # DORA (issue 16)
            result, reason = outcome.result, outcome.reason
            writes.append(
                (
                    f"the end of operation {op_id} ({what}: {result})",
                    lambda: self.store.finish_operation(
                        op_id, result, reason, message, changes, commits
                    ),
                )
            )
        rejected: list[int] = []  # its id, once written (now or by the journal later)
        if op_id is None and self._rejected(req, outcome):
            rejected = self._record_rejected(req, outcome, what)
            if rejected:
                outcome = replace(outcome, operation_id=rejected[0])
        if not req.dry_run:
            final = outcome

            def status() -> None:
                late = final.operation_id is None and rejected
                self._status_after(req, replace(final, operation_id=rejected[0]) if late else final)

            writes.append((f"the status after the {what} ({outcome.result})", status))
        if writes:

            def together() -> None:
                with self.store.atomic(f"record the {what}"):
                    for _, write in writes:
                        write()

            self.journal.write(" and ".join(w for w, _ in writes), together)
        self._notify_outcome(req, outcome)
        return outcome

    @staticmethod
    def _rejected(req: SyncRequest, outcome: SyncOutcome) -> bool:
        """Bad input that stopped before an operation started."""
        reason = outcome.reason
        return (
            not req.dry_run
            and outcome.result == "Failed"
            and reason is not None
            and reason.stalling
        )

    def _record_rejected(self, req: SyncRequest, outcome: SyncOutcome, what: str) -> list[int]:
        """Bad input never reached the deploy step: still leave a trace in history.
        Returns a list that holds its id once written (at once, or by the journal)."""
        commit = outcome.rendered.commit if outcome.rendered is not None else None
        written: list[int] = []

        def write() -> None:
            written.append(
                self.store.record_operation(
                    "policy-violation" if outcome.reason is Reason.POLICY_VIOLATION else req.kind,
                    req.app,
                    req.env,
                    "Failed",
                    trigger=req.trigger,
                    actor=req.actor,
                    revision=outcome.revision,
                    author=commit.author if commit else None,
                    commit_time=dt.datetime.fromisoformat(commit.committed_at) if commit else None,
                    reason=outcome.reason,
                    message=outcome.message,
                )
            )

        self.journal.write(f"the rejected {what}", write)
        return written

    def _deployed_commits(
        self, req: SyncRequest, outcome: SyncOutcome, op_id: int
    ) -> list[DeployedCommit]:
        """DORA's lead time (issue 16): the commits a successful deployment brought, ``git
        log previous..revision`` (previous: what was deployed when it started). Only
        deployments that changed something; a failure here never fails the record."""
        plan = outcome.plan
        if (
            req.dry_run
            or req.kind not in ("sync", "rollback")
            or outcome.result != "Succeeded"
            or outcome.revision is None
            or plan is None
            or plan.empty
        ):
            return []
        try:
            previous = self.store.get_operation(op_id).previous_revision
            found = self.source.commits_between(previous, outcome.revision)
            return [
                DeployedCommit(c.sha, dt.datetime.fromisoformat(c.committed_at), c.subject)
                for c in found
            ]
        except (GitswarmError, ValueError) as exc:
            log.warning("could not list the commits %s brought: %s", outcome.revision[:12], exc)
            return []

    def _status_after(self, req: SyncRequest, outcome: SyncOutcome) -> None:
        app, env = req.app, req.env
        if outcome.result == "Succeeded":
            undone = req.rollback_of
            if undone is not None and outcome.revision is not None:
                target, bad = outcome.revision[:12], undone.revision[:12]
                self._write_status(
                    app,
                    env,
                    sync="OutOfSync",  # Git still says the bad revision
                    health="Healthy",
                    last_result="RolledBack",
                    operation_id=outcome.operation_id,
                    revision=outcome.revision,
                    reason=undone.reason,
                    message=f"{bad} {undone.detail}; rolled back to {target}; {bad} will "
                    "not be applied again until Git moves on",
                    drift={c.service: c.as_dict() for c in outcome.drifted},
                )
                return
            drift = {**self._drift_left(app, env, outcome.plan)}
            drift.update({c.service: c.as_dict() for c in outcome.drifted})
            sync: SyncStatus = "Synced"
            if (outcome.plan is not None and outcome.plan.orphans) or drift:
                sync = "OutOfSync"
            inputs, digest = _render_key(outcome.rendered)
            self._write_status(
                app,
                env,
                sync=sync,
                health="Healthy",
                last_result="Succeeded",
                operation_id=outcome.operation_id,
                revision=outcome.revision,
                reason=None,
                message=outcome.message,
                drift=drift,
                render_inputs=inputs,  # a new agent skips the app while they stay the same
                render_digest=digest,
            )
            return
        if outcome.result == "Skipped":
            self._write_status(app, env, reason=outcome.reason, message=outcome.message)
            return
        message = outcome.message
        if req.hold_for_window and outcome.retry_at is not None:
            message = f"waiting for the deployment window: opens {outcome.retry_at.isoformat()}"
        fields: dict[str, Any] = {
            "sync": "OutOfSync",
            "last_result": outcome.result,
            "operation_id": outcome.operation_id,
            "reason": outcome.reason,
            "message": message,
        }
        if outcome.reason is not None and outcome.reason.degrades:
            fields["health"] = "Degraded"
        self._write_status(app, env, **fields)

    def _drift_left(self, app: str, env: str, plan: Plan | None) -> Mapping[str, Any]:
        """The drift reported before of the services this sync neither deployed nor
        removed (a sync without self-heal leaves a drifted service as it is): still
        there, so the status keeps it, and the drift check says when it is undone
        (DORA's drift end, issue 16)."""
        status = self.store.get_status(app, env)
        if status is None or not status.drift:
            return {}
        touched = set(plan.to_deploy) | {c.service for c in plan.to_remove} if plan else set()
        return {service: d for service, d in status.drift.items() if service not in touched}

    def _count(
        self, req: SyncRequest, outcome: SyncOutcome, op_id: int | None, seconds: float
    ) -> None:
        metrics = self.metrics
        if metrics is None or req.dry_run:
            return
        app, env = req.app, req.env
        metrics.sync_operations.labels(app, env, outcome.result, outcome.reason or "").inc()
        if outcome.result == "Succeeded":
            metrics.last_success.labels(app, env).set(time.time())
        plan = outcome.plan
        if op_id is not None and plan is not None and not plan.empty:
            metrics.sync_duration.labels(app, env).observe(seconds)  # deployed something
        if req.rollback_of is not None:
            metrics.rollbacks.labels(app, env, outcome.result).inc()  # issue 16: alerts
        if req.kind == "heal" and outcome.result == "Succeeded":
            metrics.drift_events.labels(app, env, "healed").inc()

    def _notify_outcome(self, req: SyncRequest, outcome: SyncOutcome) -> None:
        if req.dry_run or outcome.reason is Reason.LOCKED:
            return
        app, env, revision = req.app, req.env, outcome.revision
        kind: EventKind
        if outcome.result == "Succeeded":
            loosened = outcome.policy is not None and outcome.policy.loosened
            if outcome.plan is not None and outcome.plan.empty and not loosened:
                return  # nothing changed; a loosening of policies is said even then
            self._notify("sync_succeeded", app, env, revision, outcome.message, None, always=True)
            undone = req.rollback_of
            if undone is not None:
                with contextlib.suppress(GitswarmError):
                    status = self.store.get_status(app, env)
                    text = status.message if status is not None else outcome.message
                    self._notify("rollback", app, env, undone.revision, text, undone.reason)
            elif req.kind == "heal":
                text = f"reverted: {req.reverts}"  # once per drift, as it was detected
                self._notify("drift_healed", app, env, revision, text, None, dedupe=req.reverts)
            return
        if outcome.reason is Reason.POLICY_VIOLATION:
            kind = "policy_violation"
        elif outcome.reason is Reason.SIGNATURE_REJECTED:
            kind = "signature_rejected"
        elif outcome.result == "Failed":
            kind = "sync_failed"
        else:
            return
        self._notify(kind, app, env, revision, outcome.message, outcome.reason)

    # --- a commit that leaves apps as they were (reconcile/agent/gitpoll.py) ----------

    def unchanged(self, moves: list[tuple[str, str, str]], revision: str) -> set[tuple[str, str]]:
        """Each (app, env, deployed revision) renders the same at ``revision``: its status
        moves there (Synced, Healthy: nothing to render, nothing to deploy), with no
        operation in history. Returns the (app, env) moved; the others are synced as usual
        (so is every app while the store refuses writes: nothing here waits in the
        journal, whose older records must land first)."""
        message = f"inputs unchanged at {revision[:12]}: nothing to render or deploy"
        if self.journal.backlog() is not None:
            return set()
        try:
            moved = self.store.advance_revisions(moves, revision, message)
        except GitswarmError as exc:
            log.warning("could not move %d statuses to %s: %s", len(moves), revision[:12], exc)
            return set()
        if self.metrics is not None and moved:
            self.metrics.syncs_skipped.inc(len(moved))
        return moved

    # --- drift (the agent's drift checks: reconcile/agent/drift.py) --------------------

    def drift_detected(
        self, app: str, env: str, revision: str, details: Mapping[str, Any], summary: str
    ) -> None:
        """A manual change on the swarm: status OutOfSync with the fields, a drift
        operation in history, one notification per distinct drift."""
        message = f"manual change on the swarm: {summary}"
        # The services that drift now, each with the fields: DORA follows the drift
        # until each is redeployed from Git, or until it is resolved (issue 16).
        changes = [
            RecordedChange(
                service,
                "removed" if detail.get("note") == "missing" else "changed",
                tuple(str(d.get("path", d.get("field", ""))) for d in detail.get("drift", ())),
            )
            for service, detail in sorted(details.items())
        ]

        def together() -> None:
            # The status and the drift operation in one transaction, as an operation's
            # end and its status (finished): no reader sees one without the other.
            with self.store.atomic(f"record the drift of {app}/{env}"):
                self._write_status(app, env, sync="OutOfSync", drift=details, message=message)
                self.store.record_operation(
                    "drift", app, env, "Succeeded", trigger="agent", revision=revision,
                    reason=Reason.DRIFT, message=message, changes=changes,
                )  # fmt: skip

        self.journal.write(f"the drift of {app}/{env} ({summary}) and its status", together)
        if self.metrics is not None:
            self.metrics.drift_events.labels(app, env, "detected").inc()
        self._notify("drift_detected", app, env, revision, message, Reason.DRIFT, dedupe=summary)

    def drift_cleared(
        self, app: str, env: str, revision: str | None = None, services: Sequence[str] = ()
    ) -> None:
        """The drift reported before is gone (undone by hand, or by anything that is not
        a gitswarm deploy, which clears it itself): status Synced, and a DriftResolved
        operation in history, where DORA sees the drift end (issue 16)."""
        named = ", ".join(services) or "the drifted services"

        def together() -> None:
            with self.store.atomic(f"record the end of the drift of {app}/{env}"):
                self._write_status(app, env, drift={}, sync="Synced", reason=None, message="")
                self.store.record_operation(
                    "drift", app, env, "Succeeded", trigger="agent", revision=revision,
                    reason=Reason.DRIFT_RESOLVED,
                    message=f"the swarm matches Git again: {named} no longer drifted",
                )  # fmt: skip

        self.journal.write(f"the end of the drift of {app}/{env} and its status", together)

    def heal_paused(self, app: str, env: str, revision: str, text: str) -> None:
        """Self-heal stopped for drift that keeps coming back: said once, and alerted."""
        self._set_status(app, env, reason=Reason.HEAL_LOOP, message=text)
        self._notify("drift_detected", app, env, revision, text, Reason.HEAL_LOOP)

    def health_changed(
        self, app: str, env: str, was: HealthStatus, health: HealthStatus, detail: str
    ) -> None:
        """The drift round saw a deployed app's health change with no sync (a task died,
        or runs again): the status says it (health only; the last sync's result and
        message stay)."""
        level = logging.INFO if health == "Healthy" else logging.WARNING
        fields = {"app": app, "env": env, "health": health}
        log.log(level, "health %s -> %s: %s", was, health, detail or "-", extra=fields)
        self._set_status(app, env, health=health)

    # --- the two writes everything above goes through ----------------------------------

    def _set_status(self, app: str, env: str, **fields: Any) -> None:
        """A status write through the journal (``_status_after`` runs inside one: it
        calls ``_write_status``)."""
        self.journal.write(
            f"the status of {app}/{env}", lambda: self._write_status(app, env, **fields)
        )

    def _write_status(self, app: str, env: str, **fields: Any) -> None:
        status = self.store.set_status(app, env, **fields)
        if self.metrics is not None:
            self.metrics.set_state(app, env, status.sync, status.health)

    def _notify(
        self,
        kind: EventKind,
        app: str,
        env: str,
        revision: str | None,
        message: str,
        reason: Reason | None,
        *,
        dedupe: str | None = None,
        always: bool = False,
    ) -> None:
        """Send ``kind`` unless the same was sent last time (``always``: even then)."""
        if self.notifier is None:
            return
        event = Event(kind, app, env, revision, message, reason)
        fingerprint = event.fingerprint + (f"|{dedupe}" if dedupe else "")
        try:
            fresh = self.store.record_notification(app, env, kind, fingerprint)
        except GitswarmError:
            fresh = True
        if fresh or always:
            self.notifier.send(event)
            if self.metrics is not None:
                self.metrics.notifications.labels("queued").inc()


def _render_key(rendered: Rendered | None) -> tuple[list[tuple[str, str]] | None, str | None]:
    """What ``rendered`` read and its stored digest (reconcile/agent/gitpoll.py); None
    for a render whose inputs are not all files (a policy that reads the commit)."""
    if rendered is None or rendered.digest is None or rendered.inputs is None:
        return None, None
    return sorted(rendered.inputs.asked), stored_digest(rendered.digest)


__all__ = ["Recorder", "recorded_changes"]
