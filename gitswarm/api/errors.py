"""HTTP status codes for gitswarm's errors, and the one JSON shape every error has.

    {"ok": false, "error": {"reason", "message", "retryable", "problems"}}

The agent raises errors of ``gitswarm.errors``; this module maps them by class (the
table below) and adds the few the HTTP edge needs itself. Anything else that escapes a
handler is logged once with its traceback (``LastResort``) and answered as a bare 500
``InternalError``: its text could quote anything, so it never goes out.

    error (gitswarm.errors or here)       status
    Unauthorized                          401  (+ WWW-Authenticate: Bearer)
    Forbidden                             403
    NotFoundError                         404
    MethodNotAllowed                      405
    LockedError                           409
    PayloadTooLarge                       413
    UsageError (bad request)              400
    other InputError (bad Git content)    422
    retryable OperationError              503  (+ Retry-After)
    anything else                         500
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitswarm.errors import (
    GitswarmError,
    InputError,
    LockedError,
    NotFoundError,
    OperationError,
    Problem,
    Reason,
    UsageError,
)

log = logging.getLogger("gitswarm.api")

RETRY_AFTER_SECONDS = 5


class Unauthorized(GitswarmError):
    """No credentials, or credentials that match nothing (token, webhook signature)."""

    reason = Reason.UNAUTHORIZED


class Forbidden(GitswarmError):
    """Known caller, but its roles or environments do not cover this request."""

    reason = Reason.FORBIDDEN


class MethodNotAllowed(UsageError):
    reason = Reason.METHOD_NOT_ALLOWED


class PayloadTooLarge(InputError):
    reason = Reason.PAYLOAD_TOO_LARGE


class InternalError(OperationError):
    reason = Reason.INTERNAL_ERROR


def http_status(error: GitswarmError) -> int:
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, MethodNotAllowed):
        return 405
    if isinstance(error, LockedError):
        return 409
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, InputError):
        return 422
    if error.retryable:
        return 503
    return 500


def error_response(error: GitswarmError) -> JSONResponse:
    status = http_status(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status in (409, 503):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse({"ok": False, "error": error.as_dict()}, status, headers=headers)


def ok_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    """``{"ok": true, ...}``; the agent's dicts may hold datetimes, tuples, dataclasses."""
    return JSONResponse(jsonable_encoder({"ok": True, **body}), status)


# --- the shape, for the OpenAPI schema ----------------------------------------------------


class ErrorDetail(BaseModel):
    reason: str
    message: str
    retryable: bool
    problems: list[dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error of the API and the webhooks has this shape."""

    ok: Literal[False]
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Bad request (UsageError)",
        401: "No or bad bearer token (Unauthorized)",
        403: "The token's roles or environments do not cover this (Forbidden)",
        404: "No such application, environment or operation (NotFound)",
        409: "Locked by a running operation; retry later",
        413: "Body larger than the configured limit (PayloadTooLarge)",
        422: "The repository's content cannot be rendered or validated",
        500: "The operation failed",
        503: "A transient failure (Git, Docker, the store); retry later",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


# --- exception handlers, installed by create_app -------------------------------------------
# Starlette types every handler as (Request, Exception): each checks it got its own kind.


async def on_gitswarm_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, GitswarmError):
        raise exc
    return error_response(exc)


async def on_validation_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's request validation (query, path) in gitswarm's shape: a 400 UsageError."""
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(Problem(f"{where}: {item.get('msg', 'invalid')}", rule="request"))
    return error_response(UsageError(problems=problems))


async def on_http_exception(_request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method), in gitswarm's shape."""
    if not isinstance(exc, HTTPException):
        raise exc
    error: GitswarmError
    if exc.status_code == 404:
        error = NotFoundError("no such endpoint; see /openapi.json")
    elif exc.status_code == 405:
        error = MethodNotAllowed("method not allowed on this endpoint")
    elif exc.status_code == 413:
        error = PayloadTooLarge("request body too large")
    else:
        return JSONResponse(
            {
                "ok": False,
                "error": {
                    "reason": Reason.HTTP_ERROR.value,
                    "message": str(exc.detail),
                    "retryable": False,
                    "problems": [],
                },
            },
            exc.status_code,
            headers=exc.headers,
        )
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


class LastResort:
    """ASGI middleware: anything that escapes a handler (not a gitswarm error, which the
    handlers above answer) is logged once, with a plain traceback, and answered as a bare
    500 ``InternalError``.

    It stops the exception here. Starlette's own last handler re-raises after answering,
    so that the server logs it too: uvicorn's "Exception in ASGI application" would log
    the same traceback a second time, and a huge one (a RecursionError) twice over.
    A client that went away mid-request is one line, not a traceback, through
    ``disconnected(address, "METHOD path")`` when given (create_app's: within the log
    budget of that address, refusals.py: anybody can send a body and hang up).
    """

    def __init__(
        self, app: ASGIApp, disconnected: Callable[[str, str], None] | None = None
    ) -> None:
        self.app = app
        self.disconnected = disconnected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except ClientDisconnect:
            what = f"{scope.get('method')} {scope.get('path')}"
            if self.disconnected is None:
                log.info("%s: the client disconnected", what)
            else:
                client = scope.get("client")
                self.disconnected(str(client[0]) if client else "unknown", what)
        except Exception as exc:
            log.error(
                "unexpected error in %s %s",
                scope.get("method"),
                scope.get("path"),
                exc_info=exc,
            )
            if not started:
                error = InternalError("internal error; the agent's log has the details")
                await error_response(error)(scope, receive, send)
