"""Docker events: the fast way drift is seen. One watcher thread per target, while this
agent is the leader.

A service, config or secret event (update, remove) whose name belongs to an app's stack
queues a drift check of that app x env (drift.py); a manual ``docker service scale`` is
reported within seconds. The stream comes from the Swarm port (``Swarm.events``), so the
fake swarm drives it in unit tests exactly as the engine does. When the stream breaks
(engine restart, network), the watcher reconnects with backoff and first runs a full
drift round, since events may have been missed meanwhile. ``Agent.stop`` closes every
stream, which ends a watcher blocked on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gitswarm.errors import GitswarmError, SwarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import Target
from gitswarm.reconcile.agent.context import AgentContext

log = logging.getLogger("gitswarm.agent")

WATCHED = (("service", "config", "secret"), ("update", "remove"))  # Type, Action
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0


class EventWatch:
    def __init__(
        self, ctx: AgentContext, stop: threading.Event, drift_round: Callable[[], None]
    ) -> None:
        self.ctx, self.stop, self.drift_round = ctx, stop, drift_round

    def targets(self) -> list[Target]:
        """Every target of the known environments (the local engine before any config)."""
        config = self.ctx.state.config
        targets: dict[str, Target] = {}
        if config is not None:
            for env in config.environments:
                targets[env.target.name] = env.target
        return list(targets.values()) or [Target("local")]

    def start(self) -> list[threading.Thread]:
        threads = []
        for target in self.targets():
            thread = threading.Thread(
                target=self.watch, args=(target,), name=f"gitswarm-events-{target.name}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            threads.append(thread)
        return threads

    def watch(self, target: Target) -> None:
        """Follow ``target``'s events while leader, reconnecting with backoff."""
        ctx = self.ctx
        backoff = BACKOFF_FIRST
        since: dt.datetime | None = None
        while not self.stop.is_set() and ctx.state.leader:
            try:
                swarm = ctx.swarm_for(target)
                if since is not None:
                    self.drift_round()  # events may have been missed meanwhile
                since = dt.datetime.now(dt.UTC)
                stream = swarm.events(since=since)
                backoff = BACKOFF_FIRST
                ctx.state.add_stream(stream)
                if self.stop.is_set():
                    stream.close()
                for event in stream:
                    if self.stop.is_set() or not ctx.state.leader:
                        break
                    self.on_event(event)
                    since = dt.datetime.now(dt.UTC)
            except SwarmError as exc:
                log.warning("Docker events from %s: %s; reconnecting", target.name, exc.message)
            except GitswarmError as exc:
                log.warning("Docker events from %s: %s", target.name, exc.message)
            finally:
                ctx.state.forget_closed_streams()
            self.stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def on_event(self, event: Mapping[str, Any]) -> None:
        kinds, actions = WATCHED
        if event.get("Type") not in kinds or str(event.get("Action", "")) not in actions:
            return
        name = str(event.get("Actor", {}).get("Attributes", {}).get("name", ""))
        config = self.ctx.state.config
        if config is None:
            return
        for env in config.environments:
            for app in config.apps_for(env.name):
                stack = app.stack_name(env.name)
                if name == stack or name.startswith(stack + "_"):
                    self.ctx.state.put(("drift", app.name, env.name), TriggerRequest("agent"))


__all__ = ["EventWatch"]
