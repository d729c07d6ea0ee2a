"""Live updates of the dashboard over server-sent events (GET /ui/events).

Whatever changes an application's state writes the store: the agent's own syncs, a
`gitswarm sync` run in a terminal by another process, drift the agent detects. So each
event stream looks at the store (through the agent's port and ``Records``) every
``interval`` seconds and sends the fragments whose HTML changed since it last sent
them: a grid cell, an application's summary, timeline and waiting promotions (with
the buttons its viewer may use: promoting.panel), an operation's progress.
htmx's SSE extension swaps each into the element that names its event (``sse-swap``).

One ``Live`` per application owns the last read, shared by every stream for
``interval`` seconds (an asyncio lock: one read at a time), so ten open dashboards
cost one read, not ten. A stream ends when the browser goes away, or when its session
is gone (checked every ``RECHECK`` seconds: signing out ends the live view too), and
after ``lifetime`` seconds in any case: EventSource reconnects by itself, goes through
sign-in and ``access`` again, and gets every fragment afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import Environment
from starlette.requests import Request

from gitswarm.api.access import permits
from gitswarm.api.auth import Caller
from gitswarm.api.dashboard import views
from gitswarm.api.plumbing import call
from gitswarm.api.port import AgentPort
from gitswarm.errors import GitswarmError
from gitswarm.model.operation import Operation, Promotion

if TYPE_CHECKING:
    from gitswarm.api.dashboard.routes import Records
    from gitswarm.api.sessions import Sessions

RECHECK = 30.0  # seconds between checks that the stream's session still exists
HEARTBEAT = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MAX_CACHED_CELLS = 5000  # rendered grid cells kept for the streams (then forgotten at once)

Data = tuple[list[dict[str, Any]], Mapping[tuple[str, str], Operation], Sequence[Promotion]]
# An app page's pending promotions as its viewer sees them (promoting.panel): rows, viewer.
Waiting = Callable[[Sequence[Promotion]], tuple[list[dict[str, Any]], Any]]


def sse(event: str, html: str) -> str:
    lines = html.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


class Live:
    def __init__(
        self,
        agent: AgentPort,
        records: Records | None,
        jinja: Environment,
        interval: float,
        lifetime: float = 300.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.agent, self.records, self.jinja = agent, records, jinja
        self.interval, self.lifetime, self.clock = interval, lifetime, clock
        self._lock = asyncio.Lock()
        self._data: Data | None = None
        self._cells: dict[str, str] = {}
        self._at = -1e9

    def _read(self) -> Data:
        statuses = list(self.agent.statuses())
        if self.records is None:
            return statuses, {}, []
        return statuses, self.records.latest_operations(), list(self.records.pending_promotions())

    async def data(self, fresh: bool = False) -> Data:
        """Statuses, newest operations and pending promotions, at most ``interval`` old
        (``fresh``: read now; the pages do, so that a reload shows what is)."""
        async with self._lock:
            if fresh or self._data is None or self.clock() - self._at >= self.interval * 0.8:
                self._data = await call(self._read)
                self._at = self.clock()
            return self._data

    def cell(
        self,
        statuses: Sequence[Mapping[str, Any]],
        latest: Mapping[tuple[str, str], Operation],
        promotions: Sequence[Promotion],
        app: str,
        env: str,
    ) -> views.Cell:
        status = next((s for s in statuses if s.get("app") == app and s.get("env") == env), None)
        pending = sum(1 for p in promotions if p.app == app and p.to_env == env)
        return views.cell_of(status, app, env, latest.get((app, env)), pending)

    def _fragment(self, macro: str, *args: Any) -> str:
        module = self.jinja.get_template("_fragments.html").module
        return str(getattr(module, macro)(*args))

    async def fragments(
        self,
        caller: Caller,
        app: str | None,
        env: str | None,
        op: int | None,
        waiting: Waiting | None = None,
    ) -> dict[str, str]:
        statuses, latest, promotions = await self.data()
        out: dict[str, str] = {}
        if op is not None:
            operation = await call(self.agent.operation, op)
            if permits(caller, "view", str(operation.get("env"))):
                out["operation"] = self._fragment("operation", operation)
            return out
        if app is not None and env is not None:
            out["summary"] = self._fragment(
                "app_summary", self.cell(statuses, latest, promotions, app, env)
            )
            history = list(await call(self.agent.history, app, env, 30))
            out["timeline"] = self._fragment("app_timeline", history)
            if waiting is not None:
                out["promotions"] = self._fragment("app_promotions", *waiting(promotions))
            return out
        grid = views.grid(caller, statuses, latest, promotions)
        for cell in grid.cells.values():
            out[f"cell-{cell.id}"] = self._cell_html(cell)
        return out

    def _cell_html(self, cell: views.Cell) -> str:
        """A grid cell's HTML, rendered once for every stream that shows it: an open
        overview of 300 cells would otherwise render them all twice a second per tab.
        The key holds a 10-second bucket, so the cell's "3 min ago" moves on too."""
        key = f"{int(self.clock() // 10)}|{cell!r}"
        html = self._cells.get(key)
        if html is None:
            if len(self._cells) >= MAX_CACHED_CELLS:
                self._cells.clear()
            html = self._cells[key] = self._fragment("cell", cell)
        return html

    async def stream(
        self,
        request: Request,
        caller: Caller,
        cookie: str | None,
        sessions: Sessions,
        *,
        app: str | None,
        env: str | None,
        op: int | None,
        waiting: Waiting | None = None,
    ) -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        checked = beat = started = self.clock()
        yield "retry: 1000\n\n"
        while True:
            if await request.is_disconnected():
                return
            now = self.clock()
            if now - started >= self.lifetime:
                return  # the browser reconnects and is authorized afresh
            if caller.via == "session" and now - checked >= RECHECK:
                checked = now
                if await call(sessions.viewer, cookie) is None:
                    yield sse("signed-out", "")
                    return
            try:
                fragments = await self.fragments(caller, app, env, op, waiting)
            except GitswarmError:
                fragments = {}  # the store is busy or down: try again next time
            for name, html in fragments.items():
                if sent.get(name) != html:
                    sent[name] = html
                    yield sse(name, html)
            if now - beat >= HEARTBEAT:
                beat = now
                yield ": keep-alive\n\n"
            await asyncio.sleep(self.interval)
