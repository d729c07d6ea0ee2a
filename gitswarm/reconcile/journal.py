"""Records the store refused, kept in order and written again until it takes them.

The Recorder (record.py) writes every outcome — an operation finished, a rejected
commit, an app's status — through ``Journal.write``. When the store refuses a write
(the SQLite file locked by another writer past its busy timeout, its disk full,
PostgreSQL gone), the record is not dropped: it is kept here, said loudly (an ERROR log
naming what was not written and why), counted (``gitswarm_store_write_failures_total``,
``gitswarm_store_unwritten_records``), shown by /readyz, and written again — first by
the agent's ``("record",)`` task with backoff (0.5, 1, 2 ... 30 s; agent/agent.py), and
before any newer record, so records land in the order they happened (an old "Failed"
status never overwrites a newer "Succeeded").

What stays unwritten lives in this process only, on purpose: a store that refuses
writes is most often a full disk, the very disk a local copy would go to, and the
records are the outcome of work whose start is already in the store. So nothing the
agent acknowledges waits here: a request through the API is audited before it is
queued (503 otherwise), a webhook claims its delivery in the store first, an operation
is started in the store before anything is deployed, and a command (`gitswarm sync`)
does not exit 0 while one of its records is unwritten (``settle``). An agent killed
while records wait loses only their words: the operation they would have finished is
marked Interrupted by the next agent (store.mark_interrupted), never Running nor
Succeeded, and that agent syncs the app again and records what it finds
(tests/integration/test_faults_agent_kill.py). At most ``limit`` records wait; past
that the oldest is dropped with an ERROR (a store down for days must not exhaust the
agent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gitswarm.errors import GitswarmError, StoreError

log = logging.getLogger("gitswarm.store")

RETRY_FIRST = 0.5  # seconds before the first retry of a refused write ...
RETRY_MAX = 30.0  # ... doubling up to this
LIMIT = 10_000  # records kept at most while the store refuses them


@dataclass
class Unwritten:
    what: str  # "the outcome of sync app/dev at 1a2b3c4d5e6f": for the logs
    write: Callable[[], object]
    since: float  # monotonic time of the first refusal
    error: str  # the store's last answer


@dataclass(frozen=True)
class Backlog:
    """What /readyz says while records wait."""

    count: int
    oldest: str
    waiting: float  # seconds since the oldest was first refused
    error: str

    @property
    def detail(self) -> str:
        return (
            f"{self.count} record(s) not written yet, the oldest for {self.waiting:.0f}s "
            f"({self.oldest}): {self.error}"
        )


class Journal:
    """Ordered, retried writes to the store (the module docstring says why)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, limit: int = LIMIT) -> None:
        self._monotonic = monotonic
        self._limit = limit
        self._writing = threading.Lock()  # one writer at a time: records keep their order
        self._lock = threading.Lock()  # guards the fields below; never held across I/O
        self._unwritten: deque[Unwritten] = deque()
        self._refusals = 0  # refused attempts in a row (the backoff)
        self._retry_at = 0.0
        self.failures = 0  # refused writes, ever (the metric's source)

    # --- what the Recorder calls -------------------------------------------------------

    def write(self, what: str, write: Callable[[], object]) -> bool:
        """Write now, after any older record still waiting. False: the store refused
        (this or an older one); the record is kept and written later."""
        with self._writing:
            self._drain()
            with self._lock:
                behind = len(self._unwritten)
            if behind:
                self._keep(Unwritten(what, write, self._monotonic(), "waiting behind older"))
                log.error(
                    "state store: %s not written yet: %d older record(s) wait for the store",
                    what, behind,
                )  # fmt: skip
                return False
            try:
                write()
            except GitswarmError as exc:
                self._refused(Unwritten(what, write, self._monotonic(), exc.message))
                return False
            return True

    # --- what the agent calls ----------------------------------------------------------

    def due(self) -> bool:
        """Records wait and their next attempt is due (cheap: the dispatcher asks)."""
        with self._lock:
            return bool(self._unwritten) and self._monotonic() >= self._retry_at

    def flush(self) -> int:
        """Write what waits, oldest first, until the store refuses again. Returns how
        many records still wait."""
        with self._writing:
            self._drain()
            with self._lock:
                return len(self._unwritten)

    def settle(self) -> None:
        """Before the process ends (a command's last step): one more try at what waits;
        ``StoreError`` naming what the store never took, so that the command does not
        report a success it could not record."""
        if self.flush() == 0:
            return
        left = self.backlog()
        if left is not None:
            raise StoreError(
                f"the state store did not take {left.count} record(s) of this command "
                f"(the oldest: {left.oldest}): {left.error}; what was done is on the swarm, "
                "its record is not: `gitswarm sync` again once the store takes writes"
            )

    def backlog(self) -> Backlog | None:
        with self._lock:
            if not self._unwritten:
                return None
            head = self._unwritten[0]
            return Backlog(
                len(self._unwritten), head.what, self._monotonic() - head.since, head.error
            )

    # --- inside ------------------------------------------------------------------------

    def _drain(self) -> None:
        """With ``_writing`` held."""
        written = 0
        while True:
            with self._lock:
                if not self._unwritten:
                    break
                head = self._unwritten[0]
            try:
                head.write()
            except GitswarmError as exc:
                head.error = exc.message
                self._count_refusal()
                log.error(
                    "state store still refuses writes (%s): %d record(s) wait, the oldest "
                    "for %.0fs (%s); next try in %.1fs",
                    exc.message, len(self._unwritten), self._monotonic() - head.since,
                    head.what, self._retry_at - self._monotonic(),
                )  # fmt: skip
                return
            with self._lock:
                self._unwritten.popleft()
                written += 1
                caught_up = not self._unwritten
                if caught_up:
                    self._refusals = 0
                    self._retry_at = 0.0
            if caught_up:
                log.warning("state store takes writes again: %d waiting record(s) written", written)

    def _refused(self, record: Unwritten) -> None:
        self._keep(record)
        self._count_refusal()
        log.error(
            "state store refused a write: %s not written (%s); kept in memory, next try "
            "in %.1fs",
            record.what, record.error, self._retry_at - self._monotonic(),
        )  # fmt: skip

    def _count_refusal(self) -> None:
        with self._lock:
            self.failures += 1
            self._refusals += 1
            delay = min(RETRY_FIRST * 2 ** min(self._refusals - 1, 10), RETRY_MAX)
            self._retry_at = self._monotonic() + delay

    def _keep(self, record: Unwritten) -> None:
        with self._lock:
            self._unwritten.append(record)
            dropped = self._unwritten.popleft() if len(self._unwritten) > self._limit else None
        if dropped is not None:
            log.error(
                "state store: %d records wait; dropping the oldest, never written: %s",
                self._limit, dropped.what,
            )  # fmt: skip


__all__ = ["Backlog", "Journal", "Unwritten"]
