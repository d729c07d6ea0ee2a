"""The one owner of the agent's mutable state: ``AgentState``, and the lock it takes.

Every field below is private and read or written only through a method that takes
``AgentState.lock``; the work queue (queue.py, pure) is touched only with that lock held.
Values handed out are immutable (RepoConfig, Rendered, the frozen ``SourceState``), so a
reader keeps a consistent snapshot after the lock is released. The lock is never held
across I/O (Git, Docker, the store): a method copies in or out and returns. The package
docstring (reconcile/agent/__init__.py) says who writes and who reads each part.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import RepoConfig, Target
from gitswarm.model.observed import ServiceState
from gitswarm.reconcile.agent.queue import Key, WorkQueue
from gitswarm.reconcile.agent.settings import AgentSettings
from gitswarm.reconcile.sync import Rendered
from gitswarm.swarm.client import Events

AppEnv = tuple[str, str]


class HealGuard:
    """Stops self-healing drift that keeps coming back (someone or something keeps
    changing the service): at most ``limit`` heals of one app x env within ``window``
    seconds. Pure; AgentState calls it under its lock."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._heals: dict[AppEnv, deque[float]] = defaultdict(deque)

    def admit(self, app: str, env: str, now: float) -> bool:
        """Whether one more heal is allowed now; if so, it is counted."""
        heals = self._heals[(app, env)]
        while heals and now - heals[0] > self.window:
            heals.popleft()
        if len(heals) >= self.limit:
            return False
        heals.append(now)
        return True


@dataclass(frozen=True)
class SourceState:
    """What the agent knows of Git: the head it last saw, the settings at that head, and
    whether the remote answered lately."""

    head: str | None = None
    config: RepoConfig | None = None
    last_fetch_ok: float | None = None  # monotonic time of the last good poll
    error: GitswarmError | None = None  # the last poll's, until one succeeds
    failures: int = 0  # failed polls in a row


class AgentState:
    """The agent's state, under one lock (see the module and package docstrings)."""

    def __init__(self, settings: AgentSettings, monotonic: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        # Notified whenever work is queued or a task ends: the dispatcher and wait_idle.
        self.wake = threading.Condition(self.lock)
        self.queue = WorkQueue()  # only with ``lock`` held
        self._monotonic = monotonic
        self._guard = HealGuard(settings.heal_limit, settings.heal_window)
        self._leader = False
        self._source = SourceState()
        self._rendered: dict[tuple[str, str], tuple[str, Rendered]] = {}  # revision, render
        self._heal_alerted: set[AppEnv] = set()
        self._listings: dict[Target, dict[str, list[ServiceState]]] = {}
        self._streams: set[Events] = set()
        self._syncs_started = 0

    # --- leadership (written by leader.py) ---------------------------------------------

    @property
    def leader(self) -> bool:
        with self.lock:
            return self._leader

    def set_leader(self, leader: bool) -> bool:
        """Set leadership; returns what it was."""
        with self.wake:
            was, self._leader = self._leader, leader
            self.wake.notify_all()
            return was

    # --- Git (written by gitpoll.py) ---------------------------------------------------

    @property
    def source(self) -> SourceState:
        with self.lock:
            return self._source

    @property
    def head(self) -> str | None:
        return self.source.head

    @property
    def config(self) -> RepoConfig | None:
        return self.source.config

    def fetched(self, head: str) -> str | None:
        """The remote answered with ``head``; returns the head seen before."""
        with self.lock:
            previous = self._source.head
            self._source = replace(
                self._source, head=head, last_fetch_ok=self._monotonic(), error=None, failures=0
            )
            return previous

    def fetch_failed(self, error: GitswarmError) -> None:
        with self.lock:
            self._source = replace(self._source, error=error, failures=self._source.failures + 1)

    def set_config(self, config: RepoConfig) -> None:
        with self.lock:
            self._source = replace(self._source, config=config)

    def forget_head(self) -> None:
        """Look at everything again on the next poll (a new leader: the previous one may
        have died half-way)."""
        with self.lock:
            self._source = replace(self._source, head=None)

    # --- the work queue (queue.py) -----------------------------------------------------

    def put(self, key: Key, request: TriggerRequest, *, urgent: bool = False) -> None:
        with self.wake:
            self.queue.put(key, request, urgent=urgent)
            self.wake.notify_all()

    def put_all(self, work: Sequence[tuple[Key, TriggerRequest, bool]]) -> None:
        """Queue several (key, request, urgent) at once: the dispatcher sees them together,
        so the urgent ones go first."""
        with self.wake:
            for key, request, urgent in work:
                self.queue.put(key, request, urgent=urgent)
            self.wake.notify_all()

    def offer_all(self, keys: Sequence[Key], request: TriggerRequest) -> None:
        """Queue ``request`` for each key that has none pending yet."""
        with self.wake:
            for key in keys:
                self.queue.offer(key, request)
            self.wake.notify_all()

    def after(self, delay: float, key: Key, request: TriggerRequest) -> None:
        """Queue ``request`` in ``delay`` seconds."""
        with self.wake:
            self.queue.schedule(self._monotonic() + delay, key, request)
            self.wake.notify_all()

    def backoff(self, key: Key) -> float:
        with self.lock:
            return self.queue.backoff(key)

    def reset_backoff(self, key: Key) -> None:
        with self.lock:
            self.queue.reset_backoff(key)

    def done(self, key: Key) -> None:
        with self.wake:
            self.queue.done(key)
            self.wake.notify_all()

    def idle(self) -> bool:
        with self.lock:
            return self.queue.idle()

    def count_sync(self) -> None:
        with self.lock:
            self._syncs_started += 1

    @property
    def syncs_started(self) -> int:
        with self.lock:
            return self._syncs_started

    # --- drift (written by syncs.py and drift.py) --------------------------------------

    def render_of(self, app: str, env: str, revision: str) -> Rendered | None:
        with self.lock:
            known = self._rendered.get((app, env))
        return known[1] if known is not None and known[0] == revision else None

    def renders(self) -> list[tuple[str, str, Rendered]]:
        """(app, env, render) of the revision deployed last, for each app x env."""
        with self.lock:
            return [(app, env, r) for (app, env), (_rev, r) in self._rendered.items()]

    def remember_render(self, app: str, env: str, revision: str, rendered: Rendered) -> None:
        """One render per app x env: that of the revision deployed last (``kept``:
        without what only the render's own validation read)."""
        kept = rendered.kept()
        with self.lock:
            self._rendered[(app, env)] = (revision, kept)

    def busy(self, app: str, env: str) -> bool:
        """A sync or drift check of ``app`` in ``env`` runs, or a sync of it waits."""
        with self.lock:
            queue = self.queue
            return (app, env) in queue.running or ("sync", app, env) in queue.pending

    def admit_heal(self, app: str, env: str) -> bool:
        with self.lock:
            return self._guard.admit(app, env, self._monotonic())

    @property
    def heal_limits(self) -> tuple[int, float]:
        return self._guard.limit, self._guard.window  # set once, never changed

    def first_heal_alert(self, app: str, env: str) -> bool:
        """True once per stretch of a heal loop (until ``heal_settled``)."""
        with self.lock:
            if (app, env) in self._heal_alerted:
                return False
            self._heal_alerted.add((app, env))
            return True

    def heal_settled(self, app: str, env: str) -> None:
        with self.lock:
            self._heal_alerted.discard((app, env))

    def set_listings(self, listings: dict[Target, dict[str, list[ServiceState]]]) -> None:
        with self.lock:
            self._listings = listings

    def listing(self, target: Target) -> dict[str, list[ServiceState]] | None:
        with self.lock:
            return self._listings.get(target)

    # --- Docker event streams (events.py; closed by Agent.stop) ------------------------

    def add_stream(self, stream: Events) -> None:
        with self.lock:
            self._streams.add(stream)

    def forget_closed_streams(self) -> None:
        with self.lock:
            self._streams = {s for s in self._streams if not s.closed}

    def close_streams(self) -> None:
        with self.lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()


__all__ = ["AgentState", "HealGuard", "SourceState"]
