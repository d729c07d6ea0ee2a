"""The JSON API, version 1 (/api/v1): what `gitswarm status/diff/history/sync` show and do.

Reads go to the agent's port (state the loop owns); the one write, POST .../sync, queues
a trigger and answers 202 at once. Every route authenticates first (auth.py); lists are
filtered to the environments the caller may see, a single object outside them is 403.
Mutating requests are audited before they act: if the audit cannot be written, nothing
happens (503) — an action that cannot be accounted for is not taken.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at
# run time, and they name aliases local to build_router (Who, AppName, EnvName).
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse

from gitswarm.api import json_body
from gitswarm.api.access import enforce, refuse_unauthenticated
from gitswarm.api.auth import Authenticator, Caller
from gitswarm.api.errors import Unauthorized, error_responses, ok_response
from gitswarm.api.plumbing import address_of, call, read_body
from gitswarm.api.port import AgentPort, TriggerRequest
from gitswarm.api.settings import ApiSettings
from gitswarm.dora.window import parse_duration, parse_since, parse_until
from gitswarm.errors import NotFoundError, UsageError
from gitswarm.repo.config import NAME_PATTERN

log = logging.getLogger("gitswarm.api")

# A revision to sync: a commit id, tag or branch; never something git reads as an option.
REVISION = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}$")
MAX_REASON = 500


READ_ERRORS = error_responses(400, 401, 403, 404, 422, 500, 503)
SYNC_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "revision": {
                            "type": "string",
                            "description": "a commit, tag or branch (default: the followed ref)",
                        },
                        "reason": {"type": "string", "maxLength": MAX_REASON},
                        "override_window": {
                            "type": "boolean",
                            "description": "deploy even though the deployment window is "
                            "closed: admins only, needs a reason, audited",
                        },
                    },
                }
            }
        },
    }
}


# (app, env) -> the active holds after a rollback (promote/service.py), when promotion is on.
Holds = Callable[[], Mapping[tuple[str, str], list[dict[str, Any]]]]


def build_router(agent: AgentPort, settings: ApiSettings, holds: Holds | None = None) -> APIRouter:
    authenticator = Authenticator(settings)
    bearer = HTTPBearer(auto_error=False, description="A token configured in api.tokens")

    async def caller(request: Request, _scheme: Annotated[Any, Security(bearer)] = None) -> Caller:
        # The raw header, not HTTPBearer's parse: a malformed header must be a 401, not
        # an anonymous request. `bearer` is here for the OpenAPI security scheme.
        try:
            return authenticator.authenticate(request.headers.get("authorization"))
        except Unauthorized:
            if request.method == "POST":  # a sync asked for without valid credentials
                await refuse_unauthenticated(
                    settings.audit, "sync", request.url.path, "api", address_of(request)
                )
            raise

    Who = Annotated[Caller, Depends(caller)]
    AppName = Annotated[str, Path(description="application name", max_length=40)]
    EnvName = Annotated[str, Path(description="environment name", max_length=40)]

    def pair(app: str, env: str) -> str:
        if not (NAME_PATTERN.match(app) and NAME_PATTERN.match(env)):
            raise NotFoundError(f"no application {app!r} in environment {env!r}")
        return f"{app}/{env}"

    async def require(who: Caller, env: str | None, target: str) -> None:
        """access.py's one decision (pages ask it too); a refusal is audited."""
        await enforce(who, "view", env, target=target, audit=settings.audit, via="api")

    router = APIRouter(prefix="/api/v1", tags=["api"], responses=READ_ERRORS)

    @router.get("/status", summary="Every application × environment: sync, health, revision")
    async def statuses(
        who: Who,
        app: Annotated[str | None, Query(max_length=40)] = None,
        env: Annotated[str | None, Query(max_length=40)] = None,
    ) -> JSONResponse:
        if env is not None:
            await require(who, env, f"status of {env}")
        rows = await call(agent.statuses)
        rows = [
            row
            for row in rows
            if who.visible(str(row.get("env")))
            and app in (None, row.get("app"))
            and env in (None, row.get("env"))
        ]
        if holds is not None:
            held = await call(holds)
            rows = [
                {**row, "holds": held.get((str(row.get("app")), str(row.get("env"))), [])}
                for row in rows
            ]
        return ok_response({"statuses": rows})

    @router.get("/apps/{app}/envs/{env}", summary="One application in one environment")
    async def status(who: Who, app: AppName, env: EnvName) -> JSONResponse:
        await require(who, env, f"{app}/{env}")
        pair(app, env)
        row = await call(agent.status, app, env)
        if holds is not None:
            row = {**row, "holds": (await call(holds)).get((app, env), [])}
        return ok_response({"status": row})

    @router.get("/apps/{app}/envs/{env}/diff", summary="A fresh plan: desired vs deployed, drift")
    async def diff(who: Who, app: AppName, env: EnvName) -> JSONResponse:
        await require(who, env, f"{app}/{env}")
        pair(app, env)
        return ok_response({"diff": await call(agent.diff, app, env)})

    @router.get("/history", summary="Past operations, newest first")
    async def history(
        who: Who,
        app: Annotated[str | None, Query(max_length=40)] = None,
        env: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_history_limit)] = settings.history_limit,
    ) -> JSONResponse:
        if env is not None:
            await require(who, env, f"history of {env}")
        ops = await call(agent.history, app, env, limit)
        visible = [op for op in ops if who.visible(str(op.get("env")))]
        return ok_response({"operations": visible})

    @router.get(
        "/dora",
        summary="DORA metrics of an environment: frequency, lead time, failures, restore",
    )
    async def dora(
        who: Who,
        env: Annotated[str, Query(max_length=40, description="the environment")],
        app: Annotated[str | None, Query(max_length=40)] = None,
        since: Annotated[
            str, Query(max_length=40, description="30d, 12h, 2w, or an ISO date")
        ] = "30d",
        until: Annotated[
            str | None, Query(max_length=40, description="the end, as since (default: now)")
        ] = None,
        failure_window: Annotated[str, Query(max_length=12)] = "1h",
        drift_threshold: Annotated[str, Query(max_length=12)] = "60s",
    ) -> JSONResponse:
        await require(who, env, f"dora {env}")
        if not NAME_PATTERN.match(env) or (app is not None and not NAME_PATTERN.match(app)):
            raise NotFoundError(f"no application {app!r} in environment {env!r}")
        now = datetime.now(UTC)
        try:
            start = parse_since(since, now)
            end = now if until is None else parse_until(until, now, start)
            window = parse_duration(failure_window, "failure_window")
            threshold = parse_duration(drift_threshold, "drift_threshold")
        except ValueError as exc:
            message = str(exc).replace("--since", "since").replace("--until", "until")
            raise UsageError(message) from None
        report = await call(agent.dora, env, app, start, end, window, threshold)
        return ok_response({"dora": report})

    @router.get("/operations/{op_id}", summary="One recorded operation")
    async def operation(who: Who, op_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> JSONResponse:
        op = await call(agent.operation, op_id)
        env = op.get("env")
        await require(who, env if isinstance(env, str) else None, f"operation {op_id}")
        return ok_response({"operation": op})

    @router.post(
        "/apps/{app}/envs/{env}/sync",
        summary="Queue a sync (202); the history shows how it went",
        status_code=202,
        responses=error_responses(409, 413),
        openapi_extra=SYNC_BODY,
    )
    async def sync(who: Who, app: AppName, env: EnvName, request: Request) -> JSONResponse:
        target = pair(app, env)
        await enforce(
            who, "sync", env, target=target, audit=settings.audit, via="api",
            address=address_of(request),
        )  # fmt: skip
        options = _sync_options(await read_body(request, settings.max_body_bytes))
        override = options.get("override_window") == "true"
        if override:
            await enforce(
                who,
                "override-window",
                env,
                target=target,
                audit=settings.audit,
                via="api",
                audit_action="override-deployment-window",
            )
            if not options.get("reason"):
                raise UsageError("override_window needs a 'reason': it goes into the audit trail")
        revision = options.get("revision")
        reason = options.get("reason") or f"requested by {who.user} through the API"
        details: dict[str, Any] = {
            "via": "api",
            "result": "requested",
            "revision": revision,
            "reason": reason,
        }
        if override:
            details["override_window"] = True
        await call(settings.audit, who.user, "sync", target, details)
        queued = await call(
            agent.trigger,
            TriggerRequest(
                trigger="api",
                app=app,
                env=env,
                revision=revision,
                actor=who.user,
                reason=reason,
                override_window=reason if override else None,
            ),
        )
        return ok_response({"queued": queued}, 202)

    return router


def _sync_options(body: bytes) -> Mapping[str, str]:
    if not body.strip():
        return {}
    data = json_body.loads(body, "the body")  # bounded in depth before parsing
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object (or empty)")
    unknown = sorted(set(data) - {"revision", "reason", "override_window"})
    if unknown:
        raise UsageError(
            f"unknown field(s) {', '.join(unknown)}; known: override_window, reason, revision"
        )
    out: dict[str, str] = {}
    override = data.get("override_window")
    if override is not None:
        if not isinstance(override, bool):
            raise UsageError("'override_window' must be true or false")
        out["override_window"] = "true" if override else "false"
    revision = data.get("revision")
    if revision is not None:
        if not isinstance(revision, str) or not REVISION.match(revision) or ".." in revision:
            raise UsageError("'revision' must be a commit id, tag or branch name")
        out["revision"] = revision
    reason = data.get("reason")
    if reason is not None:
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise UsageError(f"'reason' must be a string of at most {MAX_REASON} characters")
        out["reason"] = reason
    return out
