"""The promotion routes of the JSON API (/api/v1/promotions, /api/v1/holds).

    POST /api/v1/promotions                  {app, from, to, images?, dry_run?}  deployer of `to`
    GET  /api/v1/promotions[?all=true]       pending ones (all: every one)       viewer
    GET  /api/v1/promotions/{id}                                                  viewer of `to`
    POST /api/v1/promotions/{id}/approve     {comment?}                           approver of `to`
    POST /api/v1/promotions/{id}/reject      {reason}                             approver of `to`
    GET  /api/v1/holds[?all=true]            holds after rollbacks                viewer
    POST /api/v1/holds/{id}/release          {reason}                             deployer there

Who may do what is decided in one place, access.py's ``authorize`` (the role each action
needs, in the environment it acts on, and never the requester deciding on their own
promotion), the same for the dashboard and the CLI's approve/reject. Every decision is
audited before it acts; a refused one is audited too.

Replays: an approval is one user's decision on one promotion, kept in the store. A
captured approve request sent again is that user deciding again: refused (400, "already
decided"), it never counts twice. Two approvals arriving at once are serialised by the service and
the store; the promotion is committed once.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations at run time.
import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse

from gitswarm.api import json_body
from gitswarm.api.access import AnyAction, authorize, refusal_of, refuse_unauthenticated
from gitswarm.api.auth import Authenticator, Caller
from gitswarm.api.errors import Forbidden, Unauthorized, error_responses, ok_response
from gitswarm.api.plumbing import address_of, call, read_body
from gitswarm.api.settings import ApiSettings
from gitswarm.errors import GitswarmError, UsageError
from gitswarm.repo.config import NAME_PATTERN

log = logging.getLogger("gitswarm.api")
# The action of each POST route, by the last part of its path (for the audit trail of
# a request that carried no valid credentials, refused before the route ran).
_POSTS = {
    "promotions": "promote",
    "approve": "approve",
    "reject": "reject",
    "release": "release-hold",
}

MAX_TEXT = 500
MAX_IMAGES = 20


class PromotionsPort(Protocol):
    """What the routes need (promote/service.py's PromotionService)."""

    def promote(
        self,
        app: str,
        source: str,
        target: str,
        *,
        images: list[str],
        dry_run: bool,
        actor: str,
    ) -> Any: ...

    def approve(self, promotion_id: int, user: str, comment: str = "") -> Any: ...

    def reject(self, promotion_id: int, user: str, reason: str) -> Any: ...

    def get(self, promotion_id: int) -> dict[str, Any]: ...

    def pending(self) -> list[dict[str, Any]]: ...

    def listing(self) -> list[dict[str, Any]]: ...

    def holds(self, active: bool | None = True) -> list[dict[str, Any]]: ...

    def hold_env(self, hold_id: int) -> str: ...

    def release_hold(self, hold_id: int, user: str, reason: str) -> dict[str, Any]: ...

    def holds_by_pair(self) -> Mapping[tuple[str, str], list[dict[str, Any]]]: ...

    def paths(self, app: str) -> list[tuple[str, str]]:
        """(from, to) of every promotion ``app`` can take (the dashboard's buttons)."""
        ...


def build_router(service: PromotionsPort, settings: ApiSettings) -> APIRouter:
    authenticator = Authenticator(settings)
    bearer = HTTPBearer(auto_error=False, description="A token configured in api.tokens")

    async def caller(request: Request, _scheme: Annotated[Any, Security(bearer)] = None) -> Caller:
        try:
            return authenticator.authenticate(request.headers.get("authorization"))
        except Unauthorized:
            if request.method == "POST":  # an action asked for without valid credentials
                action = _POSTS.get(request.url.path.rstrip("/").rsplit("/", 1)[-1], "request")
                await refuse_unauthenticated(
                    settings.audit, action, request.url.path, "api", address_of(request)
                )
            raise

    Who = Annotated[Caller, Depends(caller)]
    Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
    router = APIRouter(
        prefix="/api/v1", tags=["promotion"], responses=error_responses(400, 401, 403, 404, 409)
    )

    async def guarded(who: Caller, action: AnyAction, env: str, target: str, **kw: Any) -> None:
        try:
            authorize(who, action, env, **kw)
        except (Forbidden, Unauthorized) as exc:
            await _audit(settings, who.user, action, target, {"result": refusal_of(exc)})
            raise

    @router.post("/promotions", summary="Promote what runs healthy in one environment to the next")
    async def promote(who: Who, request: Request) -> JSONResponse:
        body = _body(
            await read_body(request, settings.max_body_bytes),
            {"app", "from", "to", "images", "dry_run"},
        )
        app, source, target = (_name(body, k) for k in ("app", "from", "to"))
        images = body.get("images") or []
        if (
            not isinstance(images, list)
            or len(images) > MAX_IMAGES
            or not all(isinstance(i, str) and len(i) <= 300 for i in images)
        ):
            raise UsageError(f"'images' must be a list of at most {MAX_IMAGES} NAME:TAG strings")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise UsageError("'dry_run' must be true or false")
        await guarded(who, "promote", target, f"{app}/{target}")
        details = {"via": "api", "from": source, "images": images, "dry_run": dry_run}
        await call(settings.audit, who.user, "promote", f"{app}/{target}", details)
        outcome = await call(
            service.promote, app, source, target, images=images, dry_run=dry_run, actor=who.user
        )
        return _outcome(outcome)

    @router.get("/promotions", summary="Pending promotions (all=true: every one)")
    async def listing(
        who: Who, all: Annotated[bool, Query(description="every promotion")] = False
    ) -> JSONResponse:
        rows = await call(service.listing if all else service.pending)
        return ok_response({"promotions": [r for r in rows if who.visible(str(r["to"]))]})

    @router.get("/promotions/{promotion_id}", summary="One promotion")
    async def one(who: Who, promotion_id: Id) -> JSONResponse:
        row = await call(service.get, promotion_id)
        await guarded(who, "view", str(row["to"]), f"promotion {promotion_id}")
        return ok_response({"promotion": row})

    async def decide(
        who: Caller, promotion_id: int, request: Request, action: Literal["approve", "reject"]
    ) -> JSONResponse:
        known = {"comment"} if action == "approve" else {"reason"}
        body = _body(await read_body(request, settings.max_body_bytes), known)
        text = body.get("comment" if action == "approve" else "reason", "")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise UsageError(f"the {next(iter(known))} must be at most {MAX_TEXT} characters")
        row = await call(service.get, promotion_id)
        target = f"{row['app']}/{row['to']}"
        await guarded(who, action, str(row["to"]), target, requester=str(row["requested_by"]))
        await call(
            settings.audit, who.user, action, target, {"via": "api", "promotion": promotion_id}
        )
        if action == "approve":
            outcome = await call(service.approve, promotion_id, who.user, text)
        else:
            outcome = await call(service.reject, promotion_id, who.user, text)
        return _outcome(outcome)

    @router.post("/promotions/{promotion_id}/approve", summary="Approve a pending promotion")
    async def approve(who: Who, promotion_id: Id, request: Request) -> JSONResponse:
        return await decide(who, promotion_id, request, "approve")

    @router.post("/promotions/{promotion_id}/reject", summary="Reject a pending promotion")
    async def reject(who: Who, promotion_id: Id, request: Request) -> JSONResponse:
        return await decide(who, promotion_id, request, "reject")

    @router.get("/holds", summary="Holds after a rollback (all=true: released ones too)")
    async def holds(who: Who, all: Annotated[bool, Query()] = False) -> JSONResponse:
        rows = await call(service.holds, None if all else True)
        return ok_response({"holds": [r for r in rows if who.visible(str(r["env"]))]})

    @router.post("/holds/{hold_id}/release", summary="Let automation apply newer tags again")
    async def release(who: Who, hold_id: Id, request: Request) -> JSONResponse:
        body = _body(await read_body(request, settings.max_body_bytes), {"reason"})
        reason = body.get("reason", "")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_TEXT:
            raise UsageError(f"'reason' is needed: a string of at most {MAX_TEXT} characters")
        env = await call(service.hold_env, hold_id)
        await guarded(who, "release-hold", env, f"hold {hold_id}")
        hold = await call(service.release_hold, hold_id, who.user, reason)
        return ok_response({"hold": hold})

    return router


def _body(raw: bytes, known: set[str]) -> dict[str, Any]:
    if not raw.strip():
        return {}
    data = json_body.loads(raw, "the body")
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return data


def _name(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise UsageError(f"'{key}' must be an application or environment name")
    return value


def _outcome(outcome: Any) -> JSONResponse:
    data = outcome.as_dict()
    if outcome.exit_code == 0:
        return ok_response({"result": data})
    status = 409 if outcome.reason in ("GateFailed", "PromotionFailed") else 400
    return JSONResponse({"ok": False, "result": data, "error": {
        "reason": outcome.reason, "message": outcome.message
    }}, status)  # fmt: skip


async def _audit(
    settings: ApiSettings, user: str, action: str, target: str, details: dict[str, Any]
) -> None:
    try:
        await call(settings.audit, user, action, target, {"via": "api", **details})
    except GitswarmError as exc:
        log.warning("could not audit a refused %s of %s by %s: %s", action, target, user, exc)
