"""The agent's work queue: what to do next, and when. Pure: no threads, no I/O, no clock
of its own (the caller passes ``now``), so every rule here is tested without threads
(tests/unit/test_agent_queue.py).

Every trigger becomes a *key* naming one piece of work:

    ("git",)                ask the remote for the branch head            gitpoll.py
    ("sync", app, env)      one Reconciler.sync                           syncs.py
    ("drift", app, env)     one drift check, and self-heal                drift.py
    ("drift-all",)          queue a drift check of every app              drift.py
    ("record",)             write the records the store refused           journal.py
    ("poll",) ("drift-tick",)  timers only: each queues git / drift-all and re-arms

The rules:

- **Coalescing**: one pending request per key. ``put`` replaces an older pending one (the
  last commit wins; a burst of webhooks is one reconcile); ``offer`` keeps it (a drift
  check an event queued stays a live one when the periodic round comes by).
- **Order** (``depends_on``): a sync stays pending while a sync of one of its app's
  dependencies is pending or running (``take_ready(after=...)``).
- **One task per slot**: a slot is an app x env (or the key itself for git and
  drift-all); a sync and a drift check of one app x env never run at once: the second
  stays pending until ``done`` frees the slot.
- **Priority**: records the store refused first (they are older than anything a
  sync would write), then git, then syncs (those of the apps the last commit touched first:
  with many apps, the one that changed must not wait behind the no-op syncs), then drift.
- **Timers**: ``schedule`` at a monotonic time; ``fire_due`` moves due ones into pending.
- **Backoff**: a transient failure retries after 2, 4, 8 ... 60 s (``backoff``); a failing
  Git remote is polled less often (``poll_delay``).

The agent holds its one lock around every call (the package docstring says which).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from gitswarm.model.agent import TriggerRequest

Key = tuple[str, ...]

PRIORITY = {"record": -1, "git": 0, "sync": 1, "drift": 2, "drift-all": 3}
RETRY_FIRST = 2.0  # seconds before the first retry of a transient failure ...
RETRY_MAX = 60.0  # ... doubling up to this
POLL_BACKOFF_STEPS = 6  # a failing remote: the poll interval doubles at most this often


def slot_of(key: Key) -> Key:
    """What may run only once at a time: the app x env of a sync or drift check."""
    return key[1:] if key[0] in ("sync", "drift") else key


def priority(key: Key) -> tuple[int, Key]:
    return PRIORITY.get(key[0], 9), key


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): 2, 4, 8, 16, 32, 60, 60 ..."""
    return float(min(RETRY_FIRST * 2 ** min(attempt - 1, 5), RETRY_MAX))


def poll_delay(interval: float, failures: int, most: float) -> float:
    """The poll interval, doubled per failed poll in a row (up to ``most`` seconds)."""
    if failures == 0:
        return interval
    return float(min(interval * 2 ** min(failures, POLL_BACKOFF_STEPS), most))


def jittered(seconds: float, fraction: float, uniform: Callable[[float, float], float]) -> float:
    """``seconds`` +/- ``fraction`` of it (agents polling one remote spread out)."""
    spread = seconds * fraction
    return max(0.1, seconds + uniform(-spread, spread))


@dataclass(order=True)
class Timer:
    due: float
    seq: int
    key: Key = field(compare=False)
    request: TriggerRequest = field(compare=False)


class WorkQueue:
    """Pending work, timers and running slots (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self.pending: dict[Key, TriggerRequest] = {}
        self.timers: list[Timer] = []  # a heap, soonest first
        self.running: set[Key] = set()  # slots
        self.urgent: set[Key] = set()  # syncs of the apps the last commit touched
        self.retries: dict[Key, int] = {}  # failed attempts in a row, per key
        self._seq = itertools.count()

    # --- what to do ------------------------------------------------------------------

    def put(self, key: Key, request: TriggerRequest, *, urgent: bool = False) -> None:
        """Queue ``request``, replacing any pending one of the same key."""
        self.pending[key] = request
        if urgent:
            self.urgent.add(key)

    def offer(self, key: Key, request: TriggerRequest) -> None:
        """Queue ``request`` unless one of the same key is pending already."""
        self.pending.setdefault(key, request)

    def take_ready(
        self, after: Callable[[Key], tuple[Key, ...]] = lambda _k: ()
    ) -> list[tuple[Key, TriggerRequest]]:
        """Every pending task whose slot is free, in priority order; their slots are
        taken until ``done``. Tasks of a busy slot stay pending, and so does a task while
        one that ``after(key)`` names (the syncs of an app's ``depends_on``) is pending or
        running."""
        ready = []
        for key in sorted(self.pending, key=lambda k: (k not in self.urgent, priority(k))):
            slot = slot_of(key)
            if slot in self.running:
                continue
            if any(k in self.pending or slot_of(k) in self.running for k in after(key)):
                continue
            self.running.add(slot)
            self.urgent.discard(key)
            ready.append((key, self.pending.pop(key)))
        return ready

    def done(self, key: Key) -> None:
        self.running.discard(slot_of(key))

    def idle(self) -> bool:
        """Nothing pending, nothing running (timers may be armed)."""
        return not self.pending and not self.running

    # --- when ------------------------------------------------------------------------

    def schedule(self, due: float, key: Key, request: TriggerRequest) -> None:
        heapq.heappush(self.timers, Timer(due, next(self._seq), key, request))

    def next_due(self) -> float | None:
        return self.timers[0].due if self.timers else None

    def fire_due(self, now: float, next_poll: Callable[[], float], drift_every: float) -> None:
        """Move every timer due at ``now`` into pending. The poll and drift timers re-arm
        themselves (``next_poll()``: seconds to the next poll, jitter and backoff in)."""
        while self.timers and self.timers[0].due <= now:
            timer = heapq.heappop(self.timers)
            if timer.key == ("poll",):
                self.put(("git",), timer.request)
                self.schedule(now + next_poll(), ("poll",), TriggerRequest("poll"))
            elif timer.key == ("drift-tick",):
                self.put(("drift-all",), timer.request)
                self.schedule(now + drift_every, ("drift-tick",), timer.request)
            else:
                self.put(timer.key, timer.request)

    # --- retries of transient failures ------------------------------------------------

    def backoff(self, key: Key) -> float:
        """Count one more failed attempt of ``key``; the seconds to wait before the next."""
        attempt = self.retries.get(key, 0) + 1
        self.retries[key] = attempt
        return retry_delay(attempt)

    def reset_backoff(self, key: Key) -> None:
        self.retries.pop(key, None)


__all__ = ["Key", "Timer", "WorkQueue", "jittered", "poll_delay", "retry_delay", "slot_of"]
