"""What every dashboard route shares (routes.py, promoting.py): rendering a template with
the security headers, who is looking, reading a form, and the two guards every route
starts with: ``looking`` for a page (signed in, a known app × environment, ``access``
allows the action there) and ``acting`` for a form post (the same, after the session's
CSRF token). Each guard answers the refusal itself: the sign-in page for nobody signed
in (audited as unauthenticated when it was an action), 403 for a user without the role
(audited as forbidden), so a route reads: guard, read the agent, render.

Pages are rendered by Jinja2 with autoescaping; no page shows a secret value (the
agent's data holds none: names of secrets, never their content).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gitswarm.api.access import Action, enforce, permits, refuse_unauthenticated
from gitswarm.api.auth import ANONYMOUS, Caller
from gitswarm.api.dashboard import views
from gitswarm.api.errors import Unauthorized, http_status
from gitswarm.api.plumbing import address_of, call, read_body
from gitswarm.api.sessions import COOKIE, Sessions, same
from gitswarm.api.settings import ApiSettings
from gitswarm.api.v1 import MAX_REASON
from gitswarm.errors import GitswarmError, NotFoundError, UsageError
from gitswarm.reconcile.metrics import Metrics
from gitswarm.repo.config import NAME_PATTERN

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
# The buttons of an app × environment page: action -> the ``can`` key templates test.
BUTTONS: Mapping[str, Action] = {
    "view": "view",
    "sync": "sync",
    "rollback": "rollback",
    "override": "override-window",
    "promote": "promote",
    "approve": "approve",
    "reject": "reject",
}


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


def pair(app_name: str, env: str) -> str:
    """``app/env`` (the audit trail's target) of names that can be an app and an env."""
    if not (NAME_PATTERN.match(app_name) and NAME_PATTERN.match(env)):
        raise NotFoundError(f"no application {app_name!r} in environment {env!r}")
    return f"{app_name}/{env}"


def named(app_name: str, env: str) -> str:
    """``app/env`` for the audit trail of a request nobody signed in sent: names that
    can be an app and an env, never other text of the request's."""
    if NAME_PATTERN.match(app_name) and NAME_PATTERN.match(env):
        return f"{app_name}/{env}"
    return "(no such application or environment)"


def reason_of(fields: Mapping[str, str], key: str = "reason") -> str:
    reason = fields.get(key, "").strip()
    if len(reason) > MAX_REASON:
        raise UsageError(f"the {key} must be at most {MAX_REASON} characters")
    return reason


def can(caller: Caller, env: str) -> dict[str, bool]:
    """Which buttons of ``env``'s page ``caller`` sees: exactly what ``access`` allows."""
    return {key: permits(caller, action, env) for key, action in BUTTONS.items()}


class Pages:
    def __init__(
        self, jinja: Environment, settings: ApiSettings, metrics: Metrics, sessions: Sessions
    ) -> None:
        self.jinja, self.settings, self.metrics, self.sessions = jinja, settings, metrics, sessions

    # --- answers ----------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.jinja.get_template(name).render(health_filters=views.HEALTH_FILTERS, **context)
        return HTMLResponse(html, status, headers=HEADERS)

    def redirect(self, url: str) -> Response:
        return RedirectResponse(url, 303, headers=HEADERS)

    def problem(self, who: Who | None, exc: GitswarmError) -> HTMLResponse:
        status = http_status(exc)
        if status in (401, 403):
            self.metrics.api_refused.labels(str(status)).inc()
        title = {403: "Not allowed", 404: "Not found", 401: "Sign in first"}.get(status, "Failed")
        return self.page("error.html", status, who=who, title=title, message=exc.message)

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.redirect(f"/ui/login?next={quote(target, safe='')}")

    # --- who, and what they sent -------------------------------------------------------

    async def current(self, request: Request) -> Who | None:
        cookie = request.cookies.get(COOKIE)
        viewer = await call(self.sessions.viewer, cookie) if cookie else None
        if viewer is not None:
            return Who(viewer.caller, viewer.csrf, cookie)
        if self.settings.anonymous_read:
            return Who(Caller((ANONYMOUS,), anonymous=True, via="anonymous"))
        return None

    async def form(self, request: Request) -> dict[str, str]:
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

    async def posted(
        self, request: Request, action: str, target: str, back: str
    ) -> tuple[Who, dict[str, str]] | Response:
        """The signed-in poster of ``action`` on ``target`` and its form, or the refusal:
        nobody signed in (anonymous, or the session ended) -> the sign-in page, then
        ``back``, audited as unauthenticated; no CSRF token -> 403, audited."""
        who = await self.current(request)
        if who is None or not who.signed_in:
            self.metrics.api_refused.labels("401").inc()
            await refuse_unauthenticated(
                self.settings.audit, action, target, "dashboard", address_of(request)
            )
            return self.redirect(f"/ui/login?next={quote(back, safe='')}")
        try:
            fields = await self.form(request)
        except GitswarmError:
            fields = {}  # not a form of ours (no body, another type, too big): no token
        if not same(fields.get("csrf", ""), who.csrf):
            await call(self.sessions.csrf_refused, who.user, request.url.path, address_of(request))
            self.metrics.api_refused.labels("403").inc()
            return self.page(
                "error.html",
                403,
                who=who,
                title="Form refused",
                message="This form did not come from your dashboard session (its "
                "security token is missing or stale): reload the page and try again.",
            )
        return who, fields

    # --- the guards ---------------------------------------------------------------------

    async def allow(self, who: Who, action: Action, env: str, target: str, **kw: Any) -> None:
        """``access.enforce`` as the dashboard asks it (403, audited with the user)."""
        await enforce(
            who.caller, action, env, target=target, audit=self.settings.audit, via="dashboard",
            **kw,
        )  # fmt: skip

    async def signed(self, request: Request) -> Who | Response:
        """Whoever looks at a page, or the sign-in page for nobody."""
        who = await self.current(request)
        return self.to_login(request) if who is None else who

    async def looking(self, request: Request, action: Action, app: str, env: str) -> Who | Response:
        """The viewer of a page about ``app`` in ``env`` who may ``action`` there; else
        the sign-in page, or the refusal."""
        who = await self.signed(request)
        if isinstance(who, Response):
            if action != "view":  # an action's page (a promotion's dry run), asked by nobody
                await refuse_unauthenticated(
                    self.settings.audit, action, f"{app}/{env}"[:90], "dashboard",
                    address_of(request),
                )  # fmt: skip
            return who
        try:
            await self.allow(who, action, env, pair(app, env))
        except Unauthorized:  # anonymous (anonymous_read): signing in may help
            return self.to_login(request)
        except GitswarmError as exc:
            return self.problem(who, exc)
        return who

    async def acting(
        self, request: Request, action: Action, app: str, env: str
    ) -> tuple[Who, dict[str, str], str] | Response:
        """The poster of a form about ``app`` in ``env``, its fields and the audit target,
        once the CSRF token matches and ``access`` allows ``action`` there."""
        spot = named(app, env)  # pair() checks it below, after the session and CSRF token
        got = await self.posted(request, action, spot, f"/ui/apps/{quote(app)}/envs/{quote(env)}")
        if isinstance(got, Response):
            return got
        who, fields = got
        try:
            target = pair(app, env)
            await self.allow(who, action, env, target)
        except GitswarmError as exc:
            return self.problem(who, exc)
        return who, fields, target

    async def audit(self, who: Who, action: str, target: str, **details: Any) -> None:
        """An accepted action, in the audit trail before it is done."""
        entry = {"via": "dashboard", "result": "requested", **details}
        await call(self.settings.audit, who.user, action, target, entry)
