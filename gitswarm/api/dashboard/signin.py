"""Signing in and out of the dashboard (GET/POST /ui/login, POST /ui/logout): the forms
and their cookies. Who a user is and whether the password is right is sessions.py's
(argon2, throttling, audit); this is what the browser sees of it.

The sign-in form carries its own CSRF token in a short-lived cookie of its own (there is
no session yet); the session cookie is HttpOnly, SameSite=Strict, and Secure when served
over TLS (or behind a proxy that says so). After signing in the browser goes where it
was going, if that is a dashboard path (never another site).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from starlette.responses import Response

from gitswarm.api.dashboard.pages import Pages
from gitswarm.api.plumbing import address_of, call
from gitswarm.api.sessions import COOKIE, LOGIN_COOKIE, same
from gitswarm.api.settings import ApiSettings
from gitswarm.errors import GitswarmError


def add_routes(router: APIRouter, pages: Pages) -> None:
    settings, sessions = pages.settings, pages.sessions
    page, redirect, problem, form, posted = (
        pages.page, pages.redirect, pages.problem, pages.form, pages.posted
    )  # fmt: skip

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
        got = await posted(request, "logout", "dashboard", "/ui/")
        if isinstance(got, Response):
            return got
        who, _ = got
        await call(sessions.sign_out, who.cookie)
        await call(settings.audit, who.user, "logout", "dashboard", {"via": "dashboard"})
        response = redirect("/ui/login?done=signed-out")
        response.delete_cookie(COOKIE, path="/ui")
        return response


def secure(request: Request, settings: ApiSettings) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return settings.secure_cookies or request.url.scheme == "https" or forwarded == "https"


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
