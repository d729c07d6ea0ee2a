"""The dashboard's pages under /ui: what an operator sees and does in a browser.

    GET  /ui/                           apps × environments (filters: env, health)
    GET  /ui/apps/{app}/envs/{env}      services, tasks, diff, drift, history, actions
    GET  /ui/apps/{app}/envs/{env}/sync dry run: what a sync would change; confirm form
    POST /ui/apps/{app}/envs/{env}/sync queue a sync (deployer; override: admin)
    POST /ui/apps/{app}/envs/{env}/rollback  deploy a revision that ran healthy (deployer)
    GET  /ui/operations/{id}            one operation: progress and outcome
    GET  /ui/dora                       DORA charts (inline SVG)
    GET  /ui/events                     server-sent events: changed fragments (live.py)
    GET/POST /ui/login, POST /ui/logout sign-in (../sessions.py)
    .../promote, /ui/promotions...      promotion and approvals (promoting.py)

Every page asks ``access.permits`` for the buttons it shows and every form post asks
``access.enforce`` again (403, audited): one decision for pages and API. Every form
carries the session's CSRF token; a post without it is refused (403, audited) before
anything else. What each route starts with (who is looking, may they, the form) is
pages.py's; this file and promoting.py hold the routes, one shape each: guard, read
the agent, render.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles

from gitswarm.api.access import permits
from gitswarm.api.dashboard import charts, promoting, signin, views
from gitswarm.api.dashboard.live import Live
from gitswarm.api.dashboard.pages import (
    HEADERS,
    Pages,
    Who,
    can,
    pair,
    reason_of,
    templates,
)
from gitswarm.api.errors import http_status
from gitswarm.api.plumbing import call
from gitswarm.api.port import AgentPort, TriggerRequest
from gitswarm.api.promotions import PromotionsPort
from gitswarm.api.sessions import Sessions
from gitswarm.api.settings import ApiSettings
from gitswarm.api.v1 import REVISION
from gitswarm.dora.window import parse_since
from gitswarm.errors import GitswarmError, NotFoundError, UsageError
from gitswarm.model.operation import Operation, Promotion
from gitswarm.reconcile.metrics import Metrics
from gitswarm.repo.config import NAME_PATTERN

STATIC = Path(__file__).with_name("static")
NOTICES = {
    "sync": "Sync queued: the status below changes as it runs.",
    "rollback": "Rollback queued: the status below changes as it runs.",
    "signed-out": "Signed out.",
    **promoting.NOTICES,
}


class Records(Protocol):
    """What the dashboard reads from the store besides the agent's port."""

    def latest_operations(self) -> Mapping[tuple[str, str], Operation]: ...

    def pending_promotions(
        self, app: str | None = None, to_env: str | None = None
    ) -> Sequence[Promotion]: ...


def mount_dashboard(
    app: FastAPI,
    agent: AgentPort,
    settings: ApiSettings,
    metrics: Metrics,
    records: Records | None = None,
    sessions: Sessions | None = None,
    promotions: PromotionsPort | None = None,
) -> Sessions:
    """Add the dashboard to ``app``; returns its sessions (tests reach the throttle)."""
    jinja = templates()
    sessions = sessions or Sessions(settings, metrics)
    pages = Pages(jinja, settings, metrics, sessions)
    page, redirect, problem = pages.page, pages.redirect, pages.problem
    current = pages.current
    live = Live(agent, records, jinja, settings.sse_interval, settings.sse_lifetime)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    router = APIRouter(prefix="/ui", include_in_schema=False)
    promotions_port = promotions

    async def visible_operation(who: Who, op_id: int) -> dict[str, Any]:
        """Operation ``op_id``, once ``who`` may view its environment (403, audited)."""
        if not 1 <= op_id < 2**63:
            raise NotFoundError(f"operation {op_id} does not exist")
        op = await call(agent.operation, op_id)
        await pages.allow(who, "view", str(op.get("env")), f"operation {op_id}")
        return op

    async def queue(
        who: Who, action: str, app_name: str, env: str, revision: str | None, reason: str,
        **extra: Any,
    ) -> None:  # fmt: skip
        """An accepted sync or rollback: audited with the user, then queued (a rollback is
        a sync of an older revision; an override opens a closed window, with its reason)."""
        override = extra.get("override_window", False)
        await pages.audit(who, action, pair(app_name, env), revision=revision, reason=reason,
                          **extra)  # fmt: skip
        request = TriggerRequest(
            trigger="user",
            app=app_name,
            env=env,
            revision=revision,
            actor=who.user,
            reason=f"rollback: {reason}" if action == "rollback" else reason,
            override_window=reason if override else None,
        )
        await call(agent.trigger, request)

    signin.add_routes(router, pages)

    # --- pages ------------------------------------------------------------------------

    @router.get("/")
    async def overview(request: Request, env: str = "", health: str = "") -> Response:
        who = await pages.signed(request)
        if isinstance(who, Response):
            return who
        env_filter = env if NAME_PATTERN.match(env or "-") else None
        health_filter = health if health in views.HEALTH_FILTERS else None
        try:
            statuses, latest, promotions = await live.data(fresh=True)
        except GitswarmError as exc:
            return problem(who, exc)
        grid = views.grid(
            who.caller,
            statuses,
            latest,
            promotions,
            env_filter=env_filter,
            health_filter=health_filter,
        )
        source = next((s.get("source") for s in statuses if s.get("source")), None)
        return page("overview.html", who=who, nav="overview", grid=grid, source=source)

    @router.get("/apps/{app_name}/envs/{env}")
    async def app_page(request: Request, app_name: str, env: str, done: str = "") -> Response:
        who = await pages.looking(request, "view", app_name, env)
        if isinstance(who, Response):
            return who

        async def tasks_of() -> tuple[list[dict[str, Any]], str]:
            try:
                return await call(agent.tasks, app_name, env), ""
            except GitswarmError as exc:  # the swarm is busy: the rest of the page is not
                return [], exc.message

        try:
            # The swarm's parts (a fresh plan, the tasks) and the store's, side by side;
            # the grid's data may be up to one SSE interval old (the stream refreshes it).
            (
                status,
                history,
                (statuses, latest, promotions),
                (tasks, tasks_error),
                paths,
            ) = await asyncio.gather(
                call(agent.status, app_name, env),
                call(agent.history, app_name, env, 30),
                live.data(),
                tasks_of(),
                promoting.paths_of(promotions_port, app_name),
            )
            history = list(history)
        except GitswarmError as exc:
            return problem(who, exc)
        cell = live.cell(statuses, latest, promotions, app_name, env)
        allowed = can(who.caller, env)
        return page(
            "app.html",
            who=who,
            nav="overview",
            app=app_name,
            env=env,
            live=status,
            cell=cell,
            tasks=tasks,
            tasks_error=tasks_error,
            diff=views.diff_rows(status.get("plan")),
            history=history,
            choices=views.rollback_choices(history, cell.deployed) if allowed["rollback"] else [],
            can=allowed,
            notice=NOTICES.get(done),
            **promoting.panel(who, app_name, env, paths, promotions, promotions_port is not None),
        )

    @router.get("/apps/{app_name}/envs/{env}/sync")
    async def sync_preview(request: Request, app_name: str, env: str) -> Response:
        who = await pages.looking(request, "view", app_name, env)
        if isinstance(who, Response):
            return who
        # The dry run is a fresh plan of Git's head; the confirmation deploys that very
        # revision (the agent looks at Git again after it: syncs.py).
        error = None
        diff: list[dict[str, Any]] = []
        head = None
        try:
            live = await call(agent.status, app_name, env)
            failed = live.get("error")
            if failed:
                error = f"{failed.get('reason')}: {failed.get('message')}"
            diff = views.diff_rows(live.get("plan"))
            head = live.get("head") if REVISION.match(str(live.get("head") or "")) else None
        except GitswarmError as exc:
            error = f"{exc.reason}: {exc.message}"
        return page(
            "sync.html",
            who=who,
            nav="overview",
            app=app_name,
            env=env,
            diff=diff,
            error=error,
            head=head,
            can=can(who.caller, env),
        )

    @router.post("/apps/{app_name}/envs/{env}/sync")
    async def sync(request: Request, app_name: str, env: str) -> Response:
        got = await pages.acting(request, "sync", app_name, env)
        if isinstance(got, Response):
            return got
        who, fields, target = got
        try:
            reason = reason_of(fields)
            override = fields.get("override_window") == "on"
            if override:
                await pages.allow(
                    who, "override-window", env, target, audit_action="override-deployment-window"
                )
                if not reason:
                    raise UsageError("deploying through a closed window needs a reason")
            reason = reason or f"requested by {who.user} in the dashboard"
            revision = fields.get("revision") or None
            if revision is not None and (not REVISION.match(revision) or ".." in revision):
                raise UsageError("'revision' must be a commit id, tag or branch name")
            extra = {"override_window": True} if override else {}
            await queue(who, "sync", app_name, env, revision, reason, **extra)
        except GitswarmError as exc:
            return problem(who, exc)
        return redirect(f"/ui/apps/{app_name}/envs/{env}?done=sync")

    @router.post("/apps/{app_name}/envs/{env}/rollback")
    async def rollback(request: Request, app_name: str, env: str) -> Response:
        got = await pages.acting(request, "rollback", app_name, env)
        if isinstance(got, Response):
            return got
        who, fields, _ = got
        try:
            revision = fields.get("revision", "")
            if not REVISION.match(revision) or ".." in revision:
                raise UsageError("choose a revision from the list")
            history = await call(agent.history, app_name, env, 200)
            status = await call(agent.status, app_name, env)
            allowed = {
                c["revision"] for c in views.rollback_choices(history, status.get("deployed"))
            }
            if revision not in allowed:
                raise UsageError(
                    f"{revision[:12]} has not run healthy in {env}: roll back to a revision "
                    "from the list"
                )
            reason = reason_of(fields) or f"rollback to {revision[:12]} by {who.user}"
            await queue(who, "rollback", app_name, env, revision, reason)
        except GitswarmError as exc:
            return problem(who, exc)
        return redirect(f"/ui/apps/{app_name}/envs/{env}?done=rollback")

    @router.get("/operations/{op_id}")
    async def operation(request: Request, op_id: int) -> Response:
        who = await pages.signed(request)
        if isinstance(who, Response):
            return who
        try:
            op = await visible_operation(who, op_id)
        except GitswarmError as exc:
            return problem(who, exc)
        return page("operation.html", who=who, nav="overview", op=_with_commits(op))

    @router.get("/dora")
    async def dora(request: Request, env: str = "", since: str = "30d") -> Response:
        who = await pages.signed(request)
        if isinstance(who, Response):
            return who
        try:
            statuses, _, _ = await live.data(fresh=True)
        except GitswarmError as exc:
            return problem(who, exc)
        envs = views.env_order(
            str(s.get("env")) for s in statuses if permits(who.caller, "view", str(s.get("env")))
        )
        asked = env if NAME_PATTERN.match(env or "-") else ""
        env = asked or (envs[-1] if envs else "")
        since = since if since in ("7d", "30d", "90d") else "30d"
        report: dict[str, Any] | None = None
        context: dict[str, Any] = {"error": "No environment to show yet."}
        if env:  # something asked for, or visible
            now = datetime.now(UTC)
            try:
                await pages.allow(who, "view", env, f"dora {env}")
                report = await call(
                    agent.dora,
                    env,
                    None,
                    parse_since(since, now),
                    now,
                    timedelta(hours=1),
                    timedelta(seconds=60),
                )
            except GitswarmError as exc:
                return problem(who, exc)
            context = {
                "error": None,
                "keys": charts.key_rows(report),
                "daily_chart": charts.daily_bars(report.get("daily", []), f"deployments to {env}"),
            }
        return page(
            "dora.html", who=who, nav="dora", envs=envs, env=env, since=since, report=report,
            **context,
        )  # fmt: skip

    @router.get("/events")
    async def events(
        request: Request, view: str = "", app: str = "", env: str = "", op: int = 0
    ) -> Response:
        who = await current(request)
        if who is None:
            return Response("sign in first", 401, headers=HEADERS)
        try:
            if app or env:
                await pages.allow(who, "view", env, pair(app, env))
            elif op:
                await visible_operation(who, op)
        except GitswarmError as exc:
            return Response(exc.message, http_status(exc), headers=HEADERS)
        offered = promotions_port is not None

        def waiting(pending: Sequence[Promotion]) -> tuple[list[dict[str, Any]], Who]:
            return promoting.panel(who, app, env, (), pending, offered)["promotions"], who

        stream = live.stream(
            request,
            who.caller,
            who.cookie,
            sessions,
            app=app or None,
            env=env or None,
            op=op or None,
            waiting=waiting if app and env else None,
        )
        headers = {**HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    promoting.add_routes(router, pages, live, promotions_port)
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/ui/", 303)

    return sessions


def _with_commits(op: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(op)
    out.setdefault("commits", [])
    return out
