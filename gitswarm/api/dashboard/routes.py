"""The dashboard's pages under /ui: what an operator sees and does in a browser.

    GET  /ui/                           apps × environments (filters: env, health)
    GET  /ui/apps/{app}/envs/{env}      services, tasks, diff, drift, history, actions
    GET  /ui/apps/{app}/envs/{env}/sync dry run: what a sync would change; confirm form
    POST /ui/apps/{app}/envs/{env}/sync queue a sync (deployer; override: admin)
    POST /ui/apps/{app}/envs/{env}/rollback  deploy a revision that ran healthy (deployer)
    GET  /ui/operations/{id}            one operation: progress and outcome
    GET  /ui/dora                       DORA charts (inline SVG)
    GET  /ui/promotions                 pending promotions (read-only)
    GET  /ui/events                     server-sent events: changed fragments (live.py)
    GET/POST /ui/login, POST /ui/logout sign-in (../sessions.py)

Every page asks ``access.permits`` for the buttons it shows and every form post asks
``access.enforce`` again (403, audited): one decision for pages and API. Every form
carries the session's CSRF token; a post without it is refused (403, audited) before
anything else. Pages are rendered by Jinja2 with autoescaping; no page shows a secret
value (the agent's data holds none: names of secrets, never their content).

Why one file: each route is a few lines of one shape (authorize, read the agent's view,
render a template), and the table above is the dashboard's map; split by page, the one
``permits``/``enforce`` pattern would be repeated across files instead of read once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, FastAPI, Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles

from gitswarm.api.access import ACTIONS, enforce, permits
from gitswarm.api.auth import ANONYMOUS, Caller
from gitswarm.api.dashboard import charts, views
from gitswarm.api.dashboard.live import Live
from gitswarm.api.errors import http_status
from gitswarm.api.plumbing import call, read_body
from gitswarm.api.port import AgentPort, TriggerRequest
from gitswarm.api.sessions import COOKIE, LOGIN_COOKIE, Sessions, same
from gitswarm.api.settings import ApiSettings
from gitswarm.api.v1 import MAX_REASON, REVISION
from gitswarm.dora.window import parse_since
from gitswarm.errors import GitswarmError, NotFoundError, UsageError
from gitswarm.model.operation import Operation, Promotion
from gitswarm.reconcile.metrics import Metrics
from gitswarm.repo.config import NAME_PATTERN

STATIC = Path(__file__).with_name("static")
MAX_FORM = 16 * 1024
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NOTICES = {
    "sync": "Sync queued: the status below changes as it runs.",
    "rollback": "Rollback queued: the status below changes as it runs.",
    "signed-out": "Signed out.",
}


class Records(Protocol):
    """What the dashboard reads from the store besides the agent's port."""

    def latest_operations(self) -> Mapping[tuple[str, str], Operation]: ...

    def pending_promotions(
        self, app: str | None = None, to_env: str | None = None
    ) -> Sequence[Promotion]: ...


@dataclass(frozen=True)
class Who:
    """Whoever looks at a page: a signed-in user, or anonymous with ``anonymous_read``."""

    caller: Caller
    csrf: str = ""
    cookie: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.caller.via == "session"

    @property
    def user(self) -> str:
        return self.caller.user

    @property
    def roles(self) -> str:
        return "; ".join(
            f"{', '.join(sorted(g.roles))} in {', '.join(sorted(g.envs))}"
            for g in self.caller.grants
        )


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("gitswarm.api.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        short=views.short, age=views.age, duration=views.duration, drift_rows=views.drift_rows
    )
    return env


def address_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def secure(request: Request, settings: ApiSettings) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return settings.secure_cookies or request.url.scheme == "https" or forwarded == "https"


def mount_dashboard(
    app: FastAPI,
    agent: AgentPort,
    settings: ApiSettings,
    metrics: Metrics,
    records: Records | None = None,
    sessions: Sessions | None = None,
) -> Sessions:
    """Add the dashboard to ``app``; returns its sessions (tests reach the throttle)."""
    jinja = templates()
    sessions = sessions or Sessions(settings, metrics)
    live = Live(agent, records, jinja, settings.sse_interval, settings.sse_lifetime)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = jinja.get_template(name).render(health_filters=views.HEALTH_FILTERS, **context)
        return HTMLResponse(html, status, headers=HEADERS)

    def redirect(url: str) -> Response:
        return RedirectResponse(url, 303, headers=HEADERS)

    def problem(who: Who | None, exc: GitswarmError) -> HTMLResponse:
        status = http_status(exc)
        if status in (401, 403):
            metrics.api_refused.labels(str(status)).inc()
        title = {403: "Not allowed", 404: "Not found", 401: "Sign in first"}.get(status, "Failed")
        return page("error.html", status, who=who, title=title, message=exc.message)

    async def current(request: Request) -> Who | None:
        cookie = request.cookies.get(COOKIE)
        viewer = await call(sessions.viewer, cookie) if cookie else None
        if viewer is not None:
            return Who(viewer.caller, viewer.csrf, cookie)
        if settings.anonymous_read:
            return Who(Caller((ANONYMOUS,), anonymous=True, via="anonymous"))
        return None

    async def visible_operation(who: Who, op_id: int) -> dict[str, Any]:
        """Operation ``op_id``, once ``who`` may view its environment (403, audited)."""
        if not 1 <= op_id < 2**63:
            raise NotFoundError(f"operation {op_id} does not exist")
        op = await call(agent.operation, op_id)
        await enforce(
            who.caller,
            "view",
            str(op.get("env")),
            target=f"operation {op_id}",
            audit=settings.audit,
            via="dashboard",
        )
        return op

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/ui/login?next={quote(target, safe='')}")

    async def form(request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise UsageError("forms are sent as application/x-www-form-urlencoded")
        body = await read_body(request, MAX_FORM)
        try:
            pairs = parse_qsl(
                body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20
            )
        except ValueError:
            raise UsageError("too many form fields") from None
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    async def posted(request: Request) -> tuple[Who, dict[str, str]] | Response:
        """The signed-in poster and its form, or the refusal (CSRF: 403, audited)."""
        who = await current(request)
        if who is None or not who.signed_in:
            return page(
                "error.html",
                401,
                who=who,
                title="Sign in first",
                message="Your session has ended: sign in again.",
            )
        try:
            fields = await form(request)
        except GitswarmError:
            fields = {}  # not a form of ours (no body, another type, too big): no token
        if not same(fields.get("csrf", ""), who.csrf):
            await call(sessions.csrf_refused, who.user, request.url.path, address_of(request))
            metrics.api_refused.labels("403").inc()
            return page(
                "error.html",
                403,
                who=who,
                title="Form refused",
                message="This form did not come from your dashboard session (its "
                "security token is missing or stale): reload the page and try again.",
            )
        return who, fields

    def pair(app_name: str, env: str) -> str:
        if not (NAME_PATTERN.match(app_name) and NAME_PATTERN.match(env)):
            raise NotFoundError(f"no application {app_name!r} in environment {env!r}")
        return f"{app_name}/{env}"

    # --- sign-in ----------------------------------------------------------------------

    @router.get("/login")
    async def login_page(request: Request, next: str = "/ui/") -> Response:
        token = secrets.token_urlsafe(24)
        response = page(
            "login.html",
            who=None,
            csrf=token,
            next=_next(next),
            username="",
            error=None if sessions.enabled else "Sign-in is off: no user store.",
        )
        _set_cookie(response, LOGIN_COOKIE, token, 600, secure(request, settings), "/ui/login")
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        try:
            fields = await form(request)
        except GitswarmError as exc:
            return problem(None, exc)
        name = fields.get("username", "")
        target = _next(fields.get("next", "/ui/"))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not same(fields.get("csrf", ""), expected):
            await call(sessions.csrf_refused, "(sign-in)", request.url.path, address_of(request))
            return page(
                "error.html",
                403,
                who=None,
                title="Form refused",
                message="The sign-in form had no valid security token: reload it and try again.",
            )
        result = await call(sessions.sign_in, name, fields.get("password", ""), address_of(request))
        if not result.ok or result.cookie is None:
            token = secrets.token_urlsafe(24)
            response = page(
                "login.html",
                result.status,
                who=None,
                csrf=token,
                next=target,
                username=name[:64],
                error=result.message,
            )
            if result.retry_after:
                response.headers["Retry-After"] = str(result.retry_after)
            _set_cookie(response, LOGIN_COOKIE, token, 600, secure(request, settings), "/ui/login")
            return response
        done = redirect(target)
        _set_cookie(
            done, COOKIE, result.cookie, settings.session_ttl, secure(request, settings), "/ui"
        )
        done.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return done

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        who, _ = got
        await call(sessions.sign_out, who.cookie)
        await call(settings.audit, who.user, "logout", "dashboard", {"via": "dashboard"})
        response = redirect("/ui/login?done=signed-out")
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # --- pages ------------------------------------------------------------------------

    @router.get("/")
    async def overview(request: Request, env: str = "", health: str = "") -> Response:
        who = await current(request)
        if who is None:
            return to_login(request)
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
        who = await current(request)
        if who is None:
            return to_login(request)
        try:
            target = pair(app_name, env)
            await enforce(
                who.caller, "view", env, target=target, audit=settings.audit, via="dashboard"
            )

            async def tasks_of() -> tuple[list[dict[str, Any]], str]:
                try:
                    return await call(agent.tasks, app_name, env), ""
                except GitswarmError as exc:  # the swarm is busy: the rest of the page is not
                    return [], exc.message

            # The swarm's parts (a fresh plan, the tasks) and the store's, side by side;
            # the grid's data may be up to one SSE interval old (the stream refreshes it).
            (
                status,
                history,
                (statuses, latest, promotions),
                (tasks, tasks_error),
            ) = await asyncio.gather(
                call(agent.status, app_name, env),
                call(agent.history, app_name, env, 30),
                live.data(),
                tasks_of(),
            )
            history = list(history)
        except GitswarmError as exc:
            return problem(who, exc)
        cell = live.cell(statuses, latest, promotions, app_name, env)
        can = _can(who.caller, env)
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
            choices=views.rollback_choices(history, cell.deployed) if can["rollback"] else [],
            promotions=[p for p in promotions if p.app == app_name and p.to_env == env],
            can=can,
            notice=NOTICES.get(done),
        )

    @router.get("/apps/{app_name}/envs/{env}/sync")
    async def sync_preview(request: Request, app_name: str, env: str) -> Response:
        who = await current(request)
        if who is None:
            return to_login(request)
        try:
            target = pair(app_name, env)
            await enforce(
                who.caller, "view", env, target=target, audit=settings.audit, via="dashboard"
            )
        except GitswarmError as exc:
            return problem(who, exc)
        # The dry run is a fresh plan of Git's head; the confirmation deploys that very
        # revision (the agent's own idea of the head may lag until its next poll).
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
            can=_can(who.caller, env),
        )

    @router.post("/apps/{app_name}/envs/{env}/sync")
    async def sync(request: Request, app_name: str, env: str) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        who, fields = got
        try:
            target = pair(app_name, env)
            await enforce(
                who.caller, "sync", env, target=target, audit=settings.audit, via="dashboard"
            )
            reason = _reason(fields)
            override = fields.get("override_window") == "on"
            if override:
                await enforce(
                    who.caller,
                    "override-window",
                    env,
                    target=target,
                    audit=settings.audit,
                    via="dashboard",
                    audit_action="override-deployment-window",
                )
                if not reason:
                    raise UsageError("deploying through a closed window needs a reason")
            reason = reason or f"requested by {who.user} in the dashboard"
            revision = fields.get("revision") or None
            if revision is not None and (not REVISION.match(revision) or ".." in revision):
                raise UsageError("'revision' must be a commit id, tag or branch name")
            details: dict[str, Any] = {
                "via": "dashboard",
                "result": "requested",
                "revision": revision,
                "reason": reason,
            }
            if override:
                details["override_window"] = True
            await call(settings.audit, who.user, "sync", target, details)
            await call(
                agent.trigger,
                TriggerRequest(
                    trigger="user",
                    app=app_name,
                    env=env,
                    revision=revision,
                    actor=who.user,
                    reason=reason,
                    override_window=reason if override else None,
                ),
            )
        except GitswarmError as exc:
            return problem(who, exc)
        return redirect(f"/ui/apps/{app_name}/envs/{env}?done=sync")

    @router.post("/apps/{app_name}/envs/{env}/rollback")
    async def rollback(request: Request, app_name: str, env: str) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        who, fields = got
        try:
            target = pair(app_name, env)
            await enforce(
                who.caller, "rollback", env, target=target, audit=settings.audit, via="dashboard"
            )
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
            reason = _reason(fields) or f"rollback to {revision[:12]} by {who.user}"
            await call(
                settings.audit,
                who.user,
                "rollback",
                target,
                {
                    "via": "dashboard",
                    "result": "requested",
                    "revision": revision,
                    "reason": reason,
                },
            )
            await call(
                agent.trigger,
                TriggerRequest(
                    trigger="user",
                    app=app_name,
                    env=env,
                    revision=revision,
                    actor=who.user,
                    reason=f"rollback: {reason}",
                ),
            )
        except GitswarmError as exc:
            return problem(who, exc)
        return redirect(f"/ui/apps/{app_name}/envs/{env}?done=rollback")

    @router.get("/operations/{op_id}")
    async def operation(request: Request, op_id: int) -> Response:
        who = await current(request)
        if who is None:
            return to_login(request)
        try:
            op = await visible_operation(who, op_id)
        except GitswarmError as exc:
            return problem(who, exc)
        return page("operation.html", who=who, nav="overview", op=_with_commits(op))

    @router.get("/dora")
    async def dora(request: Request, env: str = "", since: str = "30d") -> Response:
        who = await current(request)
        if who is None:
            return to_login(request)
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
        if not env:  # nothing asked for and nothing visible
            return page(
                "dora.html",
                who=who,
                nav="dora",
                envs=envs,
                env=env,
                since=since,
                report=None,
                error="No environment to show yet.",
            )
        now = datetime.now(UTC)
        try:
            await enforce(
                who.caller, "view", env, target=f"dora {env}", audit=settings.audit, via="dashboard"
            )
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
        return page(
            "dora.html",
            who=who,
            nav="dora",
            envs=envs,
            env=env,
            since=since,
            report=report,
            error=None,
            keys=_keys(report),
            daily_chart=charts.daily_bars(report.get("daily", []), f"deployments to {env}"),
        )

    @router.get("/promotions")
    async def promotions_page(request: Request) -> Response:
        who = await current(request)
        if who is None:
            return to_login(request)
        try:
            _, _, promotions = await live.data(fresh=True)
        except GitswarmError as exc:
            return problem(who, exc)
        shown = [p for p in promotions if permits(who.caller, "view", p.to_env)]
        return page("promotions.html", who=who, nav="promotions", promotions=shown)

    @router.get("/events")
    async def events(
        request: Request, view: str = "", app: str = "", env: str = "", op: int = 0
    ) -> Response:
        who = await current(request)
        if who is None:
            return Response("sign in first", 401, headers=HEADERS)
        try:
            if app or env:
                pair(app, env)
                await enforce(
                    who.caller,
                    "view",
                    env,
                    target=f"{app}/{env}",
                    audit=settings.audit,
                    via="dashboard",
                )
            elif op:
                await visible_operation(who, op)
        except GitswarmError as exc:
            return Response(exc.message, http_status(exc), headers=HEADERS)
        stream = live.stream(
            request,
            who.caller,
            who.cookie,
            sessions,
            app=app or None,
            env=env or None,
            op=op or None,
        )
        headers = {**HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/ui/", 303)

    return sessions


def _can(caller: Caller, env: str) -> dict[str, bool]:
    can = {action.replace("-window", ""): permits(caller, action, env) for action in ACTIONS}
    can["override"] = permits(caller, "override-window", env)
    return can


def _reason(fields: Mapping[str, str]) -> str:
    reason = fields.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise UsageError(f"the reason must be at most {MAX_REASON} characters")
    return reason


def _next(target: str) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target[:500]
    return "/ui/"


def _set_cookie(
    response: Response, name: str, value: str, max_age: int, secure_flag: bool, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=secure_flag,
        httponly=True,
        samesite="strict",
    )


def _with_commits(op: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(op)
    out.setdefault("commits", [])
    return out


def _keys(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    lead = report.get("lead_time", {})
    cfr = report.get("change_failure_rate", {})
    ttr = report.get("time_to_restore", {})
    drift = report.get("drift", {})
    freq = report.get("deployment_frequency", {})
    rows = [
        ("Deployment frequency (per day)", freq.get("per_day"), 2.0, "", False, freq.get("met")),
        (
            "Lead time (median)",
            lead.get("median_seconds"),
            lead.get("target_seconds") or 14400,
            "s",
            True,
            lead.get("met"),
        ),
        (
            "Change failure rate",
            cfr.get("rate"),
            cfr.get("target_rate") or 0.03,
            "%",
            True,
            cfr.get("met"),
        ),
        (
            "Time to restore (mean)",
            ttr.get("mean_seconds"),
            ttr.get("target_seconds") or 900,
            "s",
            True,
            ttr.get("met"),
        ),
    ]
    out = []
    for name, value, target, unit, lower, met in rows:
        value_f = float(value) if isinstance(value, int | float) else None
        out.append(
            {
                "name": name,
                "value": charts.fmt(value, unit),
                "target": ("< " if lower else "≥ ") + charts.fmt(target, unit),
                "met": met,
                "chart": charts.against_target(value_f, float(target), name, unit, lower),
            }
        )
    out.append(
        {
            "name": "Drift incidents",
            "value": str(drift.get("incidents", 0)),
            "target": "0",
            "met": drift.get("met"),
            "chart": "",
        }
    )
    return out
