"""POST /webhooks/{github,gitlab,gitea,generic}: the HTTP half of webhooks.py.

No bearer token here: the signature is the authentication. Each request is counted once
in ``metrics.webhook_requests{provider, result}`` whatever its fate, and logged with the
provider, the result and the delivery id (never a signature, a token or the body). The
line of a request that proved nothing (no valid signature, or a replay) is within the
log budget of its address (refusals.py ``BoundedLog``: 5 a minute, then one summary
line); a signed delivery is always logged.

A push to the followed ref claims its delivery keys (``settings.deliveries``) before it
is audited and triggered. A repeat is answered 200 ``{"ignored": "duplicate"}`` and
audited as ``webhook-replay-refused``: 2xx as for any delivery already handled, so a
forge's redelivery of one that worked shows as delivered (a failed one was released and
goes through). Whatever the body says, the trigger carries no revision, app or
environment: the agent looks at Git and deploys the followed branch's head.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from gitswarm.api.errors import (
    PayloadTooLarge,
    Unauthorized,
    error_response,
    error_responses,
    ok_response,
)
from gitswarm.api.plumbing import address_of, call, read_body
from gitswarm.api.port import AgentPort, TriggerRequest
from gitswarm.api.refusals import BoundedLog
from gitswarm.api.settings import ApiSettings
from gitswarm.api.webhooks import (
    ACCEPTED,
    BAD_REQUEST,
    DISABLED,
    FAILED,
    IGNORED,
    PROVIDERS,
    REPLAYED,
    TOO_LARGE,
    UNAUTHORIZED,
    Ignore,
    Ping,
    Provider,
    Signed,
    delivery_id,
)
from gitswarm.errors import GitswarmError, NotFoundError, UsageError
from gitswarm.reconcile.metrics import Metrics

log = logging.getLogger("gitswarm.api.webhooks")

DESCRIPTIONS = {
    "github": "GitHub push (X-GitHub-Event: push, X-Hub-Signature-256: sha256=HMAC); "
    "ping answered 200. JSON or form-encoded payloads.",
    "gitlab": "GitLab push (X-Gitlab-Event: Push Hook, X-Gitlab-Token: the shared secret).",
    "gitea": "Gitea/Forgejo push (X-Gitea-Event: push, X-Gitea-Signature: hex HMAC).",
    "generic": "Any sender: X-Gitswarm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
    "'<t>.<body>'>, t within api.webhook_tolerance (default 300 s); optional JSON body "
    '{"ref", "after", "actor", "app", "env"} (audited; the agent deploys the branch head).',
}


def build_router(
    agent: AgentPort,
    settings: ApiSettings,
    metrics: Metrics,
    log_budget: BoundedLog | None = None,
) -> APIRouter:
    """``log_budget``: where the lines of requests that proved nothing go (create_app's;
    None: a budget of this router's own)."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    budget = log_budget or BoundedLog(log, settings.clock)

    async def handle(provider: Provider, request: Request) -> JSONResponse:
        result = FAILED
        delivery: str | None = None
        signed = False  # the signature checked out: the forge sent this
        try:
            secrets = settings.webhooks.for_provider(provider.name)
            if not secrets:
                result = DISABLED
                return error_response(
                    NotFoundError(f"webhooks from {provider.name} are not configured")
                )
            body = await read_body(request, settings.max_body_bytes)
            checker = Signed(secrets, settings.clock(), settings.webhook_tolerance)
            provider.verify(request.headers, body, checker)
            signed = True
            response, result, delivery = await _receive(provider, body, request)
            return response
        except GitswarmError as exc:
            result = _result_of(exc)
            return error_response(exc)
        finally:
            metrics.webhook_requests.labels(provider.name, result).inc()
            client = request.client.host if request.client else "-"
            level = logging.WARNING if result in (UNAUTHORIZED, FAILED, REPLAYED) else logging.INFO
            line = ("webhook %s from %s: %s (delivery %s)", provider.name, client, result)
            if signed and result != REPLAYED:
                log.log(level, *line, delivery or "-")
            else:  # anybody can send these, as fast as they like: budgeted per address
                kind = f"webhook {provider.name} {result}"
                budget.log(level, address_of(request), kind, *line, delivery or "-")

    async def _receive(
        provider: Provider, body: bytes, request: Request
    ) -> tuple[JSONResponse, str, str | None]:
        """A delivery whose signature checked out."""
        event = provider.parse(request.headers, body)
        delivery = delivery_id(event.delivery)
        if isinstance(event, Ping):
            return ok_response({"ping": "pong"}), IGNORED, delivery
        if isinstance(event, Ignore):
            return ok_response({"ignored": event.reason}, 202), IGNORED, delivery
        followed = await call(agent.followed_ref)
        if event.ref is not None and event.ref != followed:
            return ok_response({"ignored": "ref"}, 202), IGNORED, delivery
        actor = f"webhook:{provider.name}"
        target = f"{event.app or '*'}/{event.env or '*'}"
        details = {
            "via": actor,
            "ref": followed,
            "after": event.revision,  # what the body says; never what gets deployed
            "pusher": event.actor,
            "delivery": delivery,
        }
        keys = provider.keys(request.headers, body)
        if not await call(settings.deliveries.claim_webhook_delivery, provider.name, keys):
            # budgeted per address (refusals.py): a captured delivery sent again and again
            await _audit_replay(actor, target, {**details, "address": address_of(request)})
            return ok_response({"ignored": "duplicate"}), REPLAYED, delivery
        try:
            await call(settings.audit, actor, "sync", target, {**details, "result": "requested"})
            queued = await call(
                agent.trigger,
                TriggerRequest(
                    trigger="webhook",
                    ref=followed,
                    actor=event.actor,
                    reason=f"{provider.name} push to {followed}",
                ),
            )
        except BaseException:
            # Nothing was done: the provider's redelivery must not be taken for a replay.
            try:
                await call(settings.deliveries.release_webhook_delivery, provider.name, keys)
            except GitswarmError as exc:
                log.warning("could not release a webhook delivery: [%s] %s", exc.reason, exc)
            raise
        return ok_response({"queued": queued}, 202), ACCEPTED, delivery

    async def _audit_replay(actor: str, target: str, details: dict[str, Any]) -> None:
        """A refused replay is audited; if that fails, the refusal still stands."""
        try:
            refused = {**details, "result": "refused"}
            await call(settings.audit, actor, "webhook-replay-refused", target, refused)
        except GitswarmError as exc:
            log.warning("could not audit a refused webhook replay: [%s] %s", exc.reason, exc)

    def endpoint_for(provider: Provider) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            return await handle(provider, request)

        return endpoint

    for name, provider in PROVIDERS.items():
        router.add_api_route(
            f"/{name}",
            endpoint_for(provider),
            methods=["POST"],
            name=f"webhook_{name}",
            summary=f"{name} push webhook",
            description=DESCRIPTIONS[name],
            status_code=202,
            responses={
                200: {"description": "ping answered, or a delivery seen before (ignored)"},
                **error_responses(400, 401, 404, 413, 500, 503),
            },
        )
    return router


def _result_of(error: GitswarmError) -> str:
    if isinstance(error, Unauthorized):
        return UNAUTHORIZED
    if isinstance(error, PayloadTooLarge):
        return TOO_LARGE
    if isinstance(error, UsageError):
        return BAD_REQUEST
    return FAILED
