"""The HTTP API's view of the agent: the ``AgentPort`` methods (api/port.py).

They run on the API server's threads. They read the loop's state only through
``AgentState``'s locked accessors (snapshots: they never see a half-made change), read
the store (its own transactions), and act only by queueing work (``trigger``): no API
request deploys anything itself. ``Agent`` (agent.py) is an ``AgentView`` plus the
threads that run the loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gitswarm.errors import GitswarmError, NotFoundError
from gitswarm.model.agent import Readiness, TriggerRequest
from gitswarm.model.config import Target
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.status import live_status
from gitswarm.reconcile.tasks import stack_tasks
from gitswarm.store import AGENT_LOCK


class AgentView:
    """Implements api/port.py's AgentPort over an ``AgentContext``."""

    ctx: AgentContext
    started: float  # monotonic time the agent was made

    def statuses(self) -> list[dict[str, Any]]:
        source = self._source_state()
        head = self.ctx.state.head
        return [
            {**status.as_dict(), "head": head, "source": source}
            for status in self.ctx.store.all_statuses()
        ]

    def status(self, app: str, env: str) -> dict[str, Any]:
        self._known(app, env)
        live = live_status(self.ctx.reconciler, app, env)
        return {**live.as_dict(), "source": self._source_state()}

    def _source_state(self) -> dict[str, Any]:
        """Whether the Git remote answered lately: shown with every status, so a remote
        that is down is visible where people look (the last state is kept meanwhile)."""
        source = self.ctx.state.source
        last = source.last_fetch_ok
        age = None if last is None else round(self.ctx.monotonic() - last, 1)
        return {
            "ok": source.error is None,
            "error": source.error.message if source.error is not None else None,
            "seconds_since_fetch": age,
        }

    def history(self, app: str | None, env: str | None, limit: int) -> Sequence[dict[str, Any]]:
        ops = self.ctx.store.history(app=app, env=env, limit=limit)
        return [o.as_dict() for o in ops]

    def operation(self, op_id: int) -> dict[str, Any]:
        return self.ctx.store.get_operation(op_id).as_dict()

    def dora(
        self,
        env: str,
        app: str | None,
        since: dt.datetime,
        until: dt.datetime,
        failure_window: dt.timedelta,
        drift_threshold: dt.timedelta,
    ) -> dict[str, Any]:
        return self.ctx.store.dora(
            env, app, since=since, until=until, failure_window=failure_window,
            drift_threshold=drift_threshold,
        ).as_dict()  # fmt: skip

    def diff(self, app: str, env: str) -> dict[str, Any]:
        self._known(app, env)
        result = live_status(self.ctx.reconciler, app, env)
        if result.error is not None:
            raise result.error
        return result.plan.as_dict() if result.plan else {}

    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        state = self.ctx.state
        if request.ref is not None and request.ref != self.followed_ref():
            return {"queued": [], "ignored": "ref"}
        if request.trigger == "webhook":
            # A webhook only makes the agent look at Git now, as the next poll would: it
            # fetches the followed branch itself and syncs its head if it moved. Whatever
            # commit, app or environment the body names is never deployed (a replayed
            # old webhook must not roll anything back, nor undo a deployer's choice).
            state.put(("git",), replace(request, app=None, env=None, revision=None))
            return {"queued": ["git"]}
        config = state.config
        if (request.app is None and request.env is None) or config is None:
            # A push, or nothing known yet: ask the remote first.
            state.put(("git",), request)
            return {"queued": ["git"]}
        queued = []
        for env in config.environments:
            if request.env not in (None, env.name):
                continue
            for app in config.apps_for(env.name):
                if request.app not in (None, app.name):
                    continue
                # An explicit revision is honoured, like `gitswarm sync --revision`.
                state.put(
                    ("sync", app.name, env.name), replace(request, app=app.name, env=env.name)
                )
                queued.append(f"{app.name}/{env.name}")
        if not queued:
            raise NotFoundError(f"no application {request.app!r} in environment {request.env!r}")
        return {"queued": queued}

    def readiness(self) -> Readiness:
        ctx = self.ctx
        leader = ctx.state.leader
        checks: dict[str, Any] = {}
        try:
            holder = ctx.store.lock_holder(AGENT_LOCK)
            backlog = ctx.reconciler.journal.backlog()  # records it refused, still waiting
            checks["store"] = (
                {"ok": True, "detail": ctx.store.location}
                if backlog is None
                else {"ok": False, "detail": f"{ctx.store.location}: {backlog.detail}"}
            )
        except GitswarmError as exc:
            holder = None
            checks["store"] = {"ok": False, "detail": exc.message}
        standby = f"standby (leader: {holder.holder if holder else '-'})"
        checks["leader"] = {"ok": True, "detail": "active" if leader else standby}
        try:
            ctx.swarm_for(self._first_target()).ping()
            checks["docker"] = {"ok": True, "detail": "reachable"}
        except GitswarmError as exc:
            checks["docker"] = {"ok": False, "detail": exc.message}
        limit = 3 * ctx.settings.poll_interval
        source = ctx.state.source
        last, error = source.last_fetch_ok, source.error
        age = None if last is None else ctx.monotonic() - last
        fresh = (age is not None and age <= limit) or (
            last is None and ctx.monotonic() - self.started <= limit and error is None
        )
        detail = "never fetched" if age is None else f"last fetch {age:.0f}s ago"
        if error is not None:
            detail += f"; {error.message}"
        checks["git"] = {"ok": fresh or not leader, "detail": detail}
        return Readiness(all(c["ok"] for c in checks.values()), checks)

    def followed_ref(self) -> str:
        try:
            return self.ctx.source.branch_ref()
        except GitswarmError:
            return self.ctx.source.ref()  # the remote is down: compare with what we know

    def tasks(self, app: str, env: str) -> list[dict[str, Any]]:
        """The tasks of an app × env's stack, for the dashboard (reconcile/tasks.py)."""
        self._known(app, env)
        config = self.ctx.state.config
        if config is None:
            return []
        stack = config.application(app).stack_name(env)
        return stack_tasks(self.ctx.swarm_for(config.environment(env).target), stack)

    def _first_target(self) -> Target:
        config = self.ctx.state.config
        if config is not None and config.environments:
            return config.environments[0].target
        return Target("local")

    def _known(self, app: str, env: str) -> None:
        config = self.ctx.state.config
        if config is None:
            return
        try:
            config.environment(env)
            config.application(app)
        except KeyError as exc:
            raise NotFoundError(str(exc.args[0])) from None


__all__ = ["AgentView"]
