"""A bounded audit trail for callers nobody signed in as. Wired by ``create_app`` (app.py)
around the one audit sink every route, page and the sign-in write through, so no path
of the HTTP side can miss it.

Every refusal of a request without valid credentials used to write an audit row: with
no credentials at all, one client could grow the audit table, and the disk under it,
without bound. ``BoundedAudit`` keeps the trail honest and bounded. Per window of
``window`` seconds (60):

    the first ``per_source`` (5, api.unauthenticated_audit_rows) such   one row each,
      requests of each source address
                                                                        as before
    the rest of that window, from that address                          counted; when the
                                                                        window ends, ONE row
    requests from any address beyond the first ``sources`` (20) of      counted into one
      the window (spoofed X-Forwarded-For, a /64 of IPv6 addresses)     row for all of them

so at most ``sources * per_source + sources + 1`` rows (121) a window, and memory for
``sources`` tallies, whatever the attacker sends. A summary row: actor ``anonymous``,
action ``unauthenticated-summary``, details ``{"address", "count", "window_s",
"actions": {action: count}, "message": "N more unauthenticated requests from A in W s"}``
(address ``(other addresses)`` for the rest). The summaries of a window are written
when it ends: by the app's ticker (``flush``, once a second, app.py), or by the next
such request, whichever comes first; a stopping server writes the open window's.

What is budgeted (``source_of``): refusals audited with ``result: unauthenticated``
(an action asked by nobody signed in: access.py), failed, throttled and busy sign-ins,
sign-in forms without their token, and refused webhook replays (a captured delivery
sent again). Everything else, any row about a caller somebody signed in as, goes to the
sink untouched. Nothing here decides a request: the throttle of sign-ins (sessions.py)
and the refusals stay as they are; every such request is still counted in /metrics
(``gitswarm_api_refused_requests_total``, ``gitswarm_login_failures_total``,
``gitswarm_webhook_requests_total``), and those summarised also in
``gitswarm_audit_summarized_total{action}``.

The agent's log has the same budget (``BoundedLog``, its own tallies, the same numbers):
every webhook without a valid signature, or replayed, wrote a WARNING line, so 10,000
of them from one address were 10,000 lines (the disk, journald, the cost of shipping
logs). Now the first 5 a minute per address are logged as before and one line per
address and window says how many more were not: "N more unauthenticated requests from
A in 60 s not logged (webhook generic unauthorized: N)"; the same for "the client
disconnected" of clients that hang up mid-request (api/errors.py). Sign-ins, CSRF refusals and
bad bearer tokens write no log line of their own (their audit rows are budgeted above;
with no store, the audit sink *is* the log). ``Budget`` is the one counter of both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitswarm.api.settings import AuditSink
from gitswarm.errors import GitswarmError
from gitswarm.reconcile.metrics import Metrics

log = logging.getLogger("gitswarm.api")

SUMMARY = "unauthenticated-summary"
OTHERS = "(other addresses)"
# Audit actions of requests that carried no valid credentials, whatever their result.
NO_CREDENTIALS = frozenset(
    {"login-failed", "login-throttled", "login-busy", "webhook-replay-refused"}
)
SIGN_IN_FORM = "(sign-in)"  # the actor of a sign-in form refused for its token
MAX_ADDRESS = 100


def source_of(actor: str, action: str, details: Mapping[str, Any]) -> str | None:
    """The source address a row of a caller nobody signed in as is budgeted by; None
    for every other row (those go to the audit trail as they are)."""
    budgeted = (
        details.get("result") == "unauthenticated"
        or action in NO_CREDENTIALS
        or (action == "csrf-refused" and actor == SIGN_IN_FORM)
    )
    if not budgeted:
        return None
    return str(details.get("address") or "unknown")[:MAX_ADDRESS]


@dataclass
class _Tally:
    rows: int = 0  # written one by one
    over: int = 0  # counted for the summary
    actions: dict[str, int] = field(default_factory=dict)

    def count(self, action: str) -> None:
        self.over += 1
        # the actions are gitswarm's own names (NO_CREDENTIALS, access.py's): few
        self.actions[action] = self.actions.get(action, 0) + 1


@dataclass(frozen=True)
class Summary:
    address: str
    count: int
    window_s: int
    actions: Mapping[str, int]

    @property
    def message(self) -> str:
        source = "other addresses" if self.address == OTHERS else self.address
        return f"{self.count} more unauthenticated requests from {source} in {self.window_s} s"


class Budget:
    """Per window of ``window`` seconds, the first ``per_source`` events of each of the
    first ``sources`` source addresses pass; the rest are tallied per address (beyond
    ``sources``: in one tally for all), to be summed up when the window ends. The one
    budget of both ``BoundedAudit`` (rows) and ``BoundedLog`` (lines), each its own.
    Thread-safe: routes call it from the thread pool and the event loop."""

    def __init__(
        self, clock: Callable[[], float], *, window: float, per_source: int, sources: int
    ) -> None:
        self.clock = clock
        self.window, self.per_source, self.sources = window, per_source, sources
        self._lock = threading.Lock()
        self._start: float | None = None  # of the open window; None: no window open
        self._tallies: dict[str, _Tally] = {}
        self._others = _Tally()

    def admit(self, source: str, kind: str) -> tuple[bool, list[Summary]]:
        """Whether this event of ``kind`` from ``source`` passes, and the summaries of a
        window that ended before it (for the caller to write, outside the lock)."""
        with self._lock:
            ended = self._close_if_over(self.clock())
            if self._start is None:
                self._start = self.clock()
            return self._admit(source, kind), ended

    @property
    def tracked(self) -> int:
        """How many source addresses the open window keeps a tally of (≤ ``sources``)."""
        with self._lock:
            return len(self._tallies)

    def due(self) -> bool:
        """Whether a window has ended with events still to sum up (cheap: the ticker)."""
        with self._lock:
            return self._over(self.clock())

    def close(self, final: bool = False) -> list[Summary]:
        """The summaries of a window that has ended; ``final``: of the open one too."""
        with self._lock:
            now = self.clock()
            return self._close(now) if final else self._close_if_over(now)

    # --- under the lock -----------------------------------------------------------------

    def _admit(self, source: str, kind: str) -> bool:
        tally = self._tallies.get(source)
        if tally is None:
            if len(self._tallies) >= self.sources:
                self._others.count(kind)
                return False
            tally = self._tallies[source] = _Tally()
        if tally.rows < self.per_source:
            tally.rows += 1
            return True
        tally.count(kind)
        return False

    def _over(self, now: float) -> bool:
        if self._start is None:
            return False
        # a clock that stepped back ends the window too: it must never stay open for good
        return now - self._start >= self.window or now < self._start

    def _close_if_over(self, now: float) -> list[Summary]:
        if not self._over(now):
            return []
        return self._close(now)

    def _close(self, now: float) -> list[Summary]:
        if self._start is None:
            return []
        span = round(min(max(now - self._start, 0.0), self.window))
        tallies = [*self._tallies.items(), (OTHERS, self._others)]
        self._start, self._tallies, self._others = None, {}, _Tally()
        return [
            Summary(address, t.over, span, dict(sorted(t.actions.items())))
            for address, t in tallies
            if t.over
        ]


class BoundedAudit:
    """An ``AuditSink`` around ``sink`` that budgets the rows of callers nobody signed
    in as (module docstring). Thread-safe: routes call it from the thread pool."""

    def __init__(
        self,
        sink: AuditSink,
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        window: float = 60.0,
        per_source: int = 5,
        sources: int = 20,
    ) -> None:
        self.sink, self.metrics = sink, metrics
        self.budget = Budget(clock, window=window, per_source=per_source, sources=sources)

    def __call__(self, actor: str, action: str, target: str, details: Mapping[str, Any]) -> object:
        source = source_of(actor, action, details)
        if source is None:
            return self.sink(actor, action, target, details)
        write, ended = self.budget.admit(source, action)
        self._write(ended)
        if write:
            return self.sink(actor, action, target, details)
        self.metrics.audit_summarized.labels(action).inc()
        return None

    @property
    def tracked(self) -> int:
        """How many source addresses the open window keeps a tally of (≤ ``sources``)."""
        return self.budget.tracked

    def due(self) -> bool:
        """Whether a window has ended with requests still to sum up (cheap: the ticker)."""
        return self.budget.due()

    def flush(self, final: bool = False) -> None:
        """Write the summaries of a window that has ended; ``final`` (the server stops):
        of the open one too, over the time it has been open."""
        self._write(self.budget.close(final))

    def _write(self, summaries: list[Summary]) -> None:
        for s in summaries:
            details = {
                "via": "api",
                "result": "summarized",
                "address": s.address,
                "count": s.count,
                "window_s": s.window_s,
                "actions": dict(s.actions),
                "message": s.message,
            }
            try:
                self.sink("anonymous", SUMMARY, "(unauthenticated)", details)
            except GitswarmError as exc:
                log.warning("could not audit %s: [%s] %s", s.message, exc.reason, exc)


class BoundedLog:
    """Log lines of requests that proved nothing (a webhook without a valid signature,
    a replayed delivery), budgeted per address like the audit rows: the first
    ``per_source`` a window from each address are logged as they come; the rest are
    counted, and one WARNING line per address says how many were not logged when the
    window ends (``flush``: the app's ticker, the next such line, or the server's stop).
    /metrics counts every request all the same. The caller's line must never carry a
    signature, token, password or body: this passes its arguments on as they are."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float],
        *,
        window: float = 60.0,
        per_source: int = 5,
        sources: int = 20,
    ) -> None:
        self.logger = logger
        self.budget = Budget(clock, window=window, per_source=per_source, sources=sources)

    def log(self, level: int, source: str, kind: str, message: str, *args: object) -> None:
        """``logger.log(level, message, *args)`` within the budget of ``source``;
        ``kind`` names what it was in the summary (e.g. ``webhook unauthorized``)."""
        write, ended = self.budget.admit(source[:MAX_ADDRESS], kind)
        self._write(ended)
        if write:
            self.logger.log(level, message, *args)

    def due(self) -> bool:
        return self.budget.due()

    def flush(self, final: bool = False) -> None:
        self._write(self.budget.close(final))

    def _write(self, summaries: list[Summary]) -> None:
        for s in summaries:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in s.actions.items())
            self.logger.warning("%s not logged (%s)", s.message, kinds)


class ConnectionLog(logging.Filter):
    """A filter for uvicorn's ``uvicorn.error`` logger (server.py installs it while a
    server runs): the WARNING its HTTP protocols write for each connection anybody can
    open ("Invalid HTTP request received.", "Unsupported upgrade request.", ...) within
    one budget. Those records name no address, so all connections share it: the first
    ``per_window`` (5) a window of ``window`` seconds (60) pass; the rest are counted, and
    ``summary`` (gitswarm's logger, never filtered here) says how many did not when the
    window ends (``flush``: the server's tick once a second, the next such record, or its
    stop). Anything else of uvicorn's, errors of the application included, passes."""

    def __init__(
        self,
        clock: Callable[[], float],
        summary: logging.Logger,
        *,
        window: float = 60.0,
        per_window: int = 5,
    ) -> None:
        super().__init__()
        self.summary = summary
        self.budget = Budget(clock, window=window, per_source=per_window, sources=1)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or "protocols" not in record.pathname:
            return True
        write, ended = self.budget.admit("connections", record.getMessage()[:100])
        self._write(ended)
        return write

    def due(self) -> bool:
        return self.budget.due()

    def flush(self, final: bool = False) -> None:
        self._write(self.budget.close(final))

    def _write(self, summaries: list[Summary]) -> None:
        for s in summaries:
            kinds = ", ".join(f"{kind!r}: {n}" for kind, n in s.actions.items())
            self.summary.warning(
                "%d more warnings of the HTTP server about connections in %d s not logged (%s)",
                s.count,
                s.window_s,
                kinds,
            )
