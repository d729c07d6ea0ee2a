"""``create_app``: the agent's HTTP side in one ASGI application. Called by `gitswarm serve`.

    /api/v1/...              JSON API (v1.py), bearer tokens (auth.py)
    /ui/...                  the web dashboard (dashboard/), signed-in users (sessions.py)
    /api/v1/promotions, holds  promotion and approvals (promotions.py), when given
    /webhooks/{provider}     push webhooks (webhook_routes.py), signatures
    /healthz /readyz         probes: the process is alive / the agent is ready
    /metrics                 Prometheus text of the agent's own registry
    /openapi.json            the schema of all of the above

The application holds no state of its own: it reads the agent through ``AgentPort``, the
metrics through the agent's ``Metrics`` and the dashboard's records (newest operations,
pending promotions) through ``Records`` (the store), all passed in; the dashboard's
sign-in throttle (sessions.py) and the budgets of audit rows and log lines of requests
without credentials (refusals.py, summed up by a ticker task of the app's lifespan) are
the memory it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import gitswarm
from gitswarm.api import errors as api_errors
from gitswarm.api import promotions as promotion_routes
from gitswarm.api import v1, webhook_routes
from gitswarm.api.dashboard import Records, mount_dashboard
from gitswarm.api.errors import (
    LastResort,
    on_gitswarm_error,
    on_http_exception,
    on_validation_error,
)
from gitswarm.api.plumbing import call
from gitswarm.api.port import AgentPort
from gitswarm.api.promotions import PromotionsPort
from gitswarm.api.refusals import BoundedAudit, BoundedLog
from gitswarm.api.settings import ApiSettings
from gitswarm.errors import GitswarmError
from gitswarm.reconcile.metrics import Metrics


def create_app(
    agent: AgentPort,
    settings: ApiSettings | None = None,
    metrics: Metrics | None = None,
    promotions: PromotionsPort | None = None,
    records: Records | None = None,
) -> FastAPI:
    settings = settings or ApiSettings()
    metrics = metrics or Metrics()
    # Every route writes the audit trail through this one sink: rows of callers nobody
    # signed in as are budgeted per address and window (refusals.py), the rest untouched.
    budget = BoundedAudit(
        settings.audit, metrics, settings.clock, per_source=settings.unauthenticated_audit_rows
    )
    settings = replace(settings, audit=budget)
    # ... and so are the log lines of webhooks that proved nothing and of clients that
    # hung up mid-request (the same numbers)
    rows = settings.unauthenticated_audit_rows
    log_budget = BoundedLog(webhook_routes.log, settings.clock, per_source=rows)
    hang_ups = BoundedLog(api_errors.log, settings.clock, per_source=rows)
    logs = (log_budget, hang_ups)

    def disconnected(address: str, what: str) -> None:
        line = "%s: the client disconnected"
        hang_ups.log(logging.INFO, address, "client disconnected", line, what)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_summarize(budget, logs))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            with contextlib.suppress(GitswarmError):  # logged; a stop must not fail
                await call(budget.flush, True)  # the open window's summaries, before we go
            for lines in logs:
                lines.flush(True)

    app = FastAPI(
        lifespan=lifespan,
        title="gitswarm agent",
        version=gitswarm.__version__,
        description="GitOps for Docker Swarm: status, history, diff and sync of the agent; "
        "push webhooks; probes and metrics.",
        docs_url=None,  # the interactive pages load scripts from a CDN; the schema is enough
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.audit_budget = budget  # the ones to flush when the app stops using them
    app.state.log_budgets = logs

    async def counted(request: Request, exc: Exception) -> Response:
        response = await on_gitswarm_error(request, exc)
        if response.status_code in (401, 403):  # failed logins and forbidden requests
            metrics.api_refused.labels(str(response.status_code)).inc()
        return response

    app.add_exception_handler(GitswarmError, counted)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_exception)
    # inside Starlette's ServerErrorMiddleware: it never re-raises
    app.add_middleware(LastResort, disconnected=disconnected)
    holds = promotions.holds_by_pair if promotions is not None else None
    app.include_router(v1.build_router(agent, settings, holds))
    app.include_router(webhook_routes.build_router(agent, settings, metrics, log_budget))
    mount_dashboard(app, agent, settings, metrics, records, promotions=promotions)
    if promotions is not None:
        app.include_router(promotion_routes.build_router(promotions, settings))

    @app.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="The agent is ready (200) or not (503), with each check",
        responses={503: {"description": "not ready"}},
    )
    async def readyz() -> JSONResponse:
        try:
            readiness = await call(agent.readiness)
        except GitswarmError as exc:
            checks = {"agent": {"ok": False, "detail": f"[{exc.reason}] {exc.message}"}}
            return JSONResponse({"ok": False, "ready": False, "checks": checks}, 503)
        body = {"ok": readiness.ready, "ready": readiness.ready, "checks": readiness.checks}
        return JSONResponse(body, 200 if readiness.ready else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics of this agent")
    async def prometheus() -> Response:
        text = await call(generate_latest, metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app


async def _summarize(
    budget: BoundedAudit, logs: tuple[BoundedLog, ...], every: float = 1.0
) -> None:
    """Write the summary rows and lines of a budget window once it has ended (refusals.py)."""
    while True:
        await asyncio.sleep(every)
        for lines in logs:
            if lines.due():
                lines.flush()  # a log line: no I/O worth the thread pool
        if budget.due():
            with contextlib.suppress(GitswarmError):  # logged; the next tick tries again
                await call(budget.flush)
