"""The sync task: one ``Reconciler.sync`` of an app x env, and what the agent does with
its outcome.

    Reconciler.sync (verify, render, validate, plan, apply, wait, record)
      Succeeded            its render serves the drift checks that follow (drift.py)
      transient failure    retried with backoff (2, 4 ... 60 s); a new trigger replaces it
      window closed        held: queued again when the deployment window opens
      failed deploy        with ``auto_rollback``: the last healthy revision is deployed
                           again and the bad one marked, so it is not re-applied
      anything else        waits for a new commit (bad input is stalling)

``depends_on``: a sync whose dependencies have not converged is held (status
``DependencyNotReady``, nothing applied); a dependency that converges queues the syncs
of its held dependents again (reconcile/ordered.py).

Triggered by the git task (gitpoll.py) for every automated app at a new head, and by the
API (a revision may be named, like ``gitswarm sync --revision``); after a named revision
that is not the head the agent knows, the git task runs at once (the head may have moved).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from gitswarm.errors import NotFoundError, Reason
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.agent.drift import Drift
from gitswarm.reconcile.ordered import held_dependents, unready_dependencies, waiting_message
from gitswarm.reconcile.rollback import redeploy
from gitswarm.reconcile.sync import RollbackOf, SyncOutcome, SyncRequest

log = logging.getLogger("gitswarm.agent")

# Seconds at most between two looks at a closed deployment window (_hold_for_window).
WINDOW_RECHECK = 60.0


class Syncs:
    def __init__(self, ctx: AgentContext, drift: Drift) -> None:
        self.ctx, self.drift = ctx, drift
        # app x env -> (the timer's request, when the window opens): syncs held for a
        # closed deployment window (_hold_for_window)
        self._window_waits: dict[tuple[str, str], tuple[TriggerRequest, dt.datetime]] = {}
        self._lock = threading.Lock()

    def sync(self, app: str, env: str, request: TriggerRequest) -> None:
        ctx = self.ctx
        revision = request.revision or ctx.state.head
        head = ctx.state.head
        if (
            request.trigger == "agent"
            and request.revision
            and head
            and head != request.revision
            and ctx.source.is_ancestor(request.revision, head)
        ):
            # Queued by the agent's side for a commit (image automation's) that Git has
            # since moved past, a newer head already seen: never deploy the older one
            # over it. A person's named revision (API, dashboard) is deployed as asked.
            revision = head
        if self._still_closed(app, env, request):
            return
        if self._held_for_dependencies(app, env):
            return
        policy = ctx.policy(app, env)
        ctx.state.count_sync()
        outcome = ctx.reconciler.sync(  # recorded (status, history, metrics, notification)
            SyncRequest(
                app,
                env,
                revision=revision,
                trigger=request.trigger,
                actor=request.actor,
                heal=policy.self_heal,
                lock_wait=5.0,
                message=request.reason,
                override_window=request.override_window,
                hold_for_window=True,
            )
        )
        self.drift.after_sync(outcome)
        deployed = outcome.revision or request.revision
        if request.revision and deployed and deployed != ctx.state.head:
            # A revision named by a user (the dashboard's sync deploys the head it
            # previewed): Git may have moved past what the agent last saw. Look now,
            # so every page shows Git's head at once, not at the next poll.
            why = f"after a sync of {deployed[:12]} to {app}/{env}"
            ctx.state.put(("git",), TriggerRequest("agent", reason=why))
        if outcome.result == "Succeeded":
            self._release_dependents(app, env)
        key = ("sync", app, env)
        if not outcome.retryable:
            ctx.state.reset_backoff(key)
        if outcome.reason is Reason.DEPLOYMENT_WINDOW_CLOSED:
            self._hold_for_window(key, outcome, request)
        elif outcome.retryable:
            self._retry_later(key, request, outcome)
        elif (
            outcome.result == "Failed"
            and outcome.reason is not None
            and outcome.reason.deploy_failure
            and policy.auto_rollback
            and outcome.revision
        ):
            self._auto_rollback(app, env, outcome)

    def _held_for_dependencies(self, app: str, env: str) -> bool:
        """depends_on: not applied while a dependency has not converged; the status says
        what it waits for, and the dependency's next success queues it again."""
        config, store = self.ctx.state.config, self.ctx.store
        if config is None:
            return False
        unready = unready_dependencies(config, app, env, lambda d: store.get_status(d, env))
        if not unready:
            return False
        message = waiting_message(unready, lambda d: store.get_status(d, env))
        log.info("%s/%s: %s", app, env, message)
        store.set_status(app, env, reason=Reason.DEPENDENCY_NOT_READY, message=message)
        return True

    def _release_dependents(self, app: str, env: str) -> None:
        config, store = self.ctx.state.config, self.ctx.store
        if config is None:
            return
        for name in held_dependents(config, app, env, lambda o: store.get_status(o, env)):
            request = TriggerRequest(
                "agent", app=name, env=env, revision=self.ctx.state.head,
                reason=f"{app} converged",
            )  # fmt: skip
            self.ctx.state.put(("sync", name, env), request)

    def _retry_later(
        self, key: tuple[str, ...], request: TriggerRequest, outcome: SyncOutcome
    ) -> None:
        """Transient trouble (Docker restarting, a lock still held by a dead agent, the
        store busy): try again with backoff; a new trigger meanwhile replaces it."""
        delay = self.ctx.state.backoff(key)
        log.warning(
            "%s/%s: %s (%s); retrying in %.0fs", key[1], key[2], outcome.reason,
            outcome.message, delay,
        )  # fmt: skip
        self.ctx.state.after(delay, key, request)

    def _hold_for_window(
        self, key: tuple[str, ...], outcome: SyncOutcome, request: TriggerRequest
    ) -> None:
        """Queue the sync again for when the window opens (the status says so)."""
        opens = outcome.retry_at
        if opens is None:
            return  # no opening within a year: wait for a new commit
        log.info("%s/%s held until the deployment window opens at %s", key[1], key[2], opens)
        with self._lock:
            self._window_waits[(key[1], key[2])] = (request, opens)
        self._wait_for(key, request, opens)

    def _wait_for(self, key: tuple[str, ...], request: TriggerRequest, opens: dt.datetime) -> None:
        """A timer on the monotonic clock that looks at the wall clock again at least
        every WINDOW_RECHECK: a step of the host's clock (NTP) moves the opening, and is
        seen within that — not when a delay computed before the step runs out."""
        delay = max(1.0, (opens - self.ctx.reconciler.clock.now()).total_seconds())
        self.ctx.state.after(min(delay, WINDOW_RECHECK), key, request)

    def _still_closed(self, app: str, env: str, request: TriggerRequest) -> bool:
        """Whether this is the window timer firing before the opening (then it is armed
        again: no render, no record). Any other trigger syncs as usual."""
        with self._lock:
            held = self._window_waits.pop((app, env), None)
            if held is None or held[0] is not request:
                return False
            if self.ctx.reconciler.clock.now() >= held[1]:
                return False
            self._window_waits[(app, env)] = held
        self._wait_for(("sync", app, env), request, held[1])
        return True

    def _auto_rollback(self, app: str, env: str, failed: SyncOutcome) -> None:
        bad = failed.revision or ""
        reason = failed.reason or Reason.UNKNOWN
        try:
            outcome = redeploy(
                self.ctx.reconciler,
                app,
                env,
                RollbackOf(bad, reason, f"failed ({reason}: {failed.message})"),
                message=f"automatic rollback from {bad[:12]} ({reason})",
                lock_wait=5.0,
            )
        except NotFoundError:
            log.warning("%s/%s: no healthy revision to roll back to", app, env)
            return
        self.drift.after_sync(outcome)


__all__ = ["Syncs"]
