"""Leadership: only one agent per store acts; the others stand by.

The ``agent`` lease in the store (store/locks.py) names the leader. This thread renews it
every third of its time to live; a standby tries to take it at the same pace and so takes
over within one ``lease_ttl`` of the leader's death. On becoming leader: operations a
dead leader left Running are marked Interrupted, everything is looked at again (a poll
and a drift round at once), and the Docker event watchers start (events.py). When a
renewal fails the agent stops acting at once: the dispatcher hands out no more work
(agent.py), and running tasks finish under their own sync locks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.store import AGENT_LOCK

log = logging.getLogger("gitswarm.agent")


class Leadership:
    def __init__(self, ctx: AgentContext, on_elected: Callable[[], None]) -> None:
        self.store, self.holder, self.state = ctx.store, ctx.holder, ctx.state
        self.ttl = ctx.settings.lease_ttl
        self.on_elected = on_elected

    def run(self, stop: threading.Event) -> None:
        """The lease thread, until ``stop``."""
        while not stop.is_set():
            self.step()
            stop.wait(self.ttl / 3)

    def step(self) -> None:
        """One renewal (leader) or one attempt to take the lease (standby)."""
        try:
            if self.state.leader:
                if not self.store.renew_lock(AGENT_LOCK, self.holder, self.ttl):
                    log.warning("lost the agent lease; standing by")
                    self.state.set_leader(False)
            elif self.store.acquire_lock(AGENT_LOCK, self.holder, self.ttl):
                self._become_leader()
        except GitswarmError as exc:
            log.warning("lease: %s", exc.message)
            if self.state.leader and not self._still_valid():
                self.state.set_leader(False)

    def release(self) -> None:
        if self.state.set_leader(False):
            with contextlib.suppress(GitswarmError):
                self.store.release_lock(AGENT_LOCK, self.holder)

    def _still_valid(self) -> bool:
        with contextlib.suppress(GitswarmError):
            info = self.store.lock_holder(AGENT_LOCK)
            return info is not None and info.holder == self.holder
        return False

    def _become_leader(self) -> None:
        interrupted = self.store.mark_interrupted(exclude_holder=self.holder)
        if interrupted:
            log.warning("marked %d operation(s) of a dead agent as Interrupted", len(interrupted))
        log.info("agent %s is the leader", self.holder)
        self.state.forget_head()  # re-check everything: the previous leader may have died
        self.state.put(("git",), TriggerRequest(trigger="agent", reason="leader start"))
        self.state.after(0.0, ("drift-all",), TriggerRequest(trigger="agent"))
        self.state.set_leader(True)
        self.on_elected()


__all__ = ["Leadership"]
