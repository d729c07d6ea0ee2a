"""The dashboard's promotion pages and forms, over the same PromotionService as the JSON
API (api/promotions.py), with the same ``access`` decisions:

    GET  /ui/apps/{app}/envs/{env}/promote  dry run of promoting into env from its
                                            source: images, file diffs, gates  (deployer of env)
    POST /ui/apps/{app}/envs/{env}/promote  request it (committed, or pending) (deployer of env)
    GET  /ui/promotions                     pending promotions, with their buttons  (viewer)
    POST /ui/promotions/{id}/approve        approve, optional comment  (approver of its target)
    POST /ui/promotions/{id}/reject         reject, with a reason      (approver of its target)

A promotion is named by its target, as a sync is by its environment: the role it needs
is the target's (Kargo's "promote into a stage"); the source's page offers it too
("Promote to production…"). The confirmation posts the tags the dry run showed, so what
is committed is what was previewed: if the source runs something else by then, the
promotion is refused (the Promoter checks each ``--image`` against what runs).
Whoever requested a promotion sees no approve or reject button on it, and the endpoint
refuses them (403, audited), as the API does. Every request and decision is audited with
the user before it is made (the Promoter audits what it does in turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gitswarm.api.access import Action, permits
from gitswarm.api.dashboard.live import Live
from gitswarm.api.dashboard.pages import Pages, Who, pair, reason_of
from gitswarm.api.plumbing import call
from gitswarm.api.promotions import MAX_IMAGES, PromotionsPort
from gitswarm.errors import GitswarmError, NotFoundError, UsageError
from gitswarm.model.operation import Promotion

NOTICES = {
    "promotion-pending": "Promotion requested: it waits for approval (below).",
    "promotion-committed": "Promotion committed to Git: the status below changes as the "
    "agent deploys it.",
    "promotion-unchanged": "Nothing to promote: the target already runs these tags.",
    "approved": "Approved.",
    "rejected": "Rejected: nothing is committed.",
}
RESULT_NOTICE = {
    "Pending": "promotion-pending",
    "Committed": "promotion-committed",
    "Unchanged": "promotion-unchanged",
    "Approved": "approved",
    "Rejected": "rejected",
}


async def paths_of(port: PromotionsPort | None, app: str) -> list[tuple[str, str]]:
    """(from, to) of the promotions ``app`` can take; none without a promotion service
    or while Git's settings cannot be read (the page shows the rest)."""
    if port is None:
        return []
    try:
        return await call(port.paths, app)
    except GitswarmError:
        return []


def decisions(who: Who, p: Promotion, offered: bool = True) -> dict[str, Any]:
    """A pending promotion with the buttons ``who`` sees on it (none where this agent
    offers no promotion service: the store's records are shown read-only)."""
    flags = {
        action: offered and permits(who.caller, action, p.to_env, requester=p.requested_by)
        for action in ("approve", "reject")
    }
    return {"p": p, **flags, "own": p.requested_by == who.user}


def panel(
    who: Who,
    app: str,
    env: str,
    paths: Sequence[tuple[str, str]],
    pending: Sequence[Promotion],
    offered: bool,
) -> dict[str, Any]:
    """What app.html shows of promotion for ``app`` in ``env``: where it may be promoted
    to and from by ``who``, and the pending promotions into or out of ``env``."""
    return {
        "promote_to": [t for s, t in paths if s == env and permits(who.caller, "promote", t)],
        "promote_from": [s for s, t in paths if t == env and permits(who.caller, "promote", env)],
        "promotions": [
            decisions(who, p, offered)
            for p in pending
            if p.app == app
            and env in (p.to_env, p.from_env)
            and permits(who.caller, "view", p.to_env)
        ],
    }


def _images(text: str) -> list[str]:
    images = text.split()
    if len(images) > MAX_IMAGES or any(len(i) > 300 for i in images):
        raise UsageError(f"at most {MAX_IMAGES} images of NAME:TAG")
    return images


def add_routes(router: APIRouter, pages: Pages, live: Live, port: PromotionsPort | None) -> None:
    page, redirect, problem = pages.page, pages.redirect, pages.problem

    def service() -> PromotionsPort:
        if port is None:
            raise NotFoundError("promotion is not offered by this agent")
        return port

    async def source_of(app: str, env: str) -> str:
        for source, target in await call(service().paths, app):
            if target == env:
                return source
        raise NotFoundError(f"nothing promotes {app} to {env}: it is the first environment")

    async def run(
        who: Who, app: str, env: str, images: list[str], *, dry_run: bool
    ) -> tuple[str, Any]:
        """Promote ``app`` into ``env`` from its source (audited first): source, outcome."""
        source = await source_of(app, env)
        await pages.audit(
            who, "promote", pair(app, env), source=source, images=images, dry_run=dry_run
        )
        outcome = await call(
            service().promote, app, source, env, images=images, dry_run=dry_run, actor=who.user
        )
        return source, outcome

    def outcome_page(
        who: Who, app: str, env: str, source: str, outcome: Any, status: int
    ) -> Response:
        data = outcome.as_dict()
        return page(
            "promote.html",
            status,
            who=who,
            nav="overview",
            app=app,
            env=env,
            source=source,
            outcome=data,
            images=" ".join(f"{r}:{i['to']}" for r, i in data["images"].items()),
            confirm=status == 200 and outcome.result == "DryRun" and outcome.ok,
        )

    @router.get("/apps/{app_name}/envs/{env}/promote")
    async def preview(request: Request, app_name: str, env: str) -> Response:
        who = await pages.looking(request, "promote", app_name, env)
        if isinstance(who, Response):
            return who
        try:
            source, outcome = await run(who, app_name, env, [], dry_run=True)
        except GitswarmError as exc:
            return problem(who, exc)
        return outcome_page(who, app_name, env, source, outcome, 200)

    @router.post("/apps/{app_name}/envs/{env}/promote")
    async def promote(request: Request, app_name: str, env: str) -> Response:
        got = await pages.acting(request, "promote", app_name, env)
        if isinstance(got, Response):
            return got
        who, fields, _ = got
        try:
            images = _images(fields.get("images", ""))
            source, outcome = await run(who, app_name, env, images, dry_run=False)
        except GitswarmError as exc:
            return problem(who, exc)
        if not outcome.ok or outcome.result not in RESULT_NOTICE:
            return outcome_page(who, app_name, env, source, outcome, 409)
        return redirect(f"/ui/apps/{app_name}/envs/{env}?done={RESULT_NOTICE[outcome.result]}")

    async def decide(request: Request, promotion_id: int, action: Action) -> Response:
        target = f"promotion {promotion_id}"[:40]
        got = await pages.posted(request, action, target, "/ui/promotions")
        if isinstance(got, Response):
            return got
        who, fields = got
        try:
            if not 1 <= promotion_id < 2**63:
                raise NotFoundError(f"promotion {promotion_id} does not exist")
            row = await call(service().get, promotion_id)
            app, env = str(row["app"]), str(row["to"])
            target = pair(app, env)
            await pages.allow(who, action, env, target, requester=str(row["requested_by"]))
            if action == "approve":
                text = reason_of(fields, "comment")
                await pages.audit(who, action, target, promotion=promotion_id)
                outcome = await call(service().approve, promotion_id, who.user, text)
            else:
                text = reason_of(fields)
                if not text:
                    raise UsageError("a rejection needs a reason: it goes into the history")
                await pages.audit(who, action, target, promotion=promotion_id, reason=text)
                outcome = await call(service().reject, promotion_id, who.user, text)
        except GitswarmError as exc:
            return problem(who, exc)
        if not outcome.ok or outcome.result not in RESULT_NOTICE:
            return outcome_page(who, app, env, str(row["from"]), outcome, 409)
        done = RESULT_NOTICE[outcome.result]
        if fields.get("back") == "promotions":
            return redirect(f"/ui/promotions?done={done}")
        return redirect(f"/ui/apps/{app}/envs/{env}?done={done}")

    @router.post("/promotions/{promotion_id}/approve")
    async def approve(request: Request, promotion_id: int) -> Response:
        return await decide(request, promotion_id, "approve")

    @router.post("/promotions/{promotion_id}/reject")
    async def reject(request: Request, promotion_id: int) -> Response:
        return await decide(request, promotion_id, "reject")

    @router.get("/promotions")
    async def listing(request: Request, done: str = "") -> Response:
        who = await pages.signed(request)
        if isinstance(who, Response):
            return who
        try:
            _, _, pending = await live.data(fresh=True)
        except GitswarmError as exc:
            return problem(who, exc)
        shown = [
            decisions(who, p, port is not None)
            for p in pending
            if permits(who.caller, "view", p.to_env)
        ]
        return page(
            "promotions.html", who=who, nav="promotions", promotions=shown, notice=NOTICES.get(done)
        )


__all__ = ["NOTICES", "add_routes", "panel", "paths_of"]
