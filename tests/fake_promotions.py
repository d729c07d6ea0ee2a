"""A PromotionsPort for the authorization matrix: the store's promotion records and
holds, and answers that change nothing, so every cell of the matrix finds its promotion
pending and its hold active.

``paths`` is a ring (development -> staging -> production -> development) so that every
environment of FakeAgent has a source to be promoted from. The real service (the
Promoter on a real Git and store) is exercised by test_dashboard_promotions.py and, on
the real swarm, by the browser test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gitswarm.promote.core.message import GateResult
from gitswarm.promote.pipeline import PromotionOutcome
from gitswarm.promote.service import promotion_dict
from gitswarm.store import Store

RING = (("development", "staging"), ("staging", "production"), ("production", "development"))
SOURCE = {target: source for source, target in RING}
IMAGE = "127.0.0.1:5000/web"


class FakePromotions:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[Any, ...]] = []

    def paths(self, app: str) -> list[tuple[str, str]]:
        return list(RING)

    def promote(
        self,
        app: str,
        source: str,
        target: str,
        *,
        images: Sequence[str] = (),
        dry_run: bool = False,
        actor: str,
        trigger: str = "api",
    ) -> PromotionOutcome:
        self.calls.append(("promote", app, source, target, tuple(images), dry_run, actor))
        changed = {IMAGE: ("1.0.0", "1.1.0")}
        if dry_run:
            return PromotionOutcome(
                app, source, target, "DryRun", "dry run: nothing committed; gates pass",
                changed=changed, gates=(GateResult("policy", True, "0 warning(s)"),),
                edits=((f"environments/{target}/.env", "-TAG=1.0.0\n+TAG=1.1.0\n"),),
                needed=1,
            )  # fmt: skip
        return PromotionOutcome(
            app, source, target, "Pending", "waits for 1 approval", changed=changed, needed=1
        )

    def approve(self, promotion_id: int, user: str, comment: str = "") -> PromotionOutcome:
        self.calls.append(("approve", promotion_id, user, comment))
        p = self.store.get_promotion(promotion_id)
        return PromotionOutcome(p.app, p.from_env, p.to_env, "Approved", promotion_id=p.id)

    def reject(self, promotion_id: int, user: str, reason: str) -> PromotionOutcome:
        self.calls.append(("reject", promotion_id, user, reason))
        p = self.store.get_promotion(promotion_id)
        return PromotionOutcome(p.app, p.from_env, p.to_env, "Rejected", promotion_id=p.id)

    def get(self, promotion_id: int) -> dict[str, Any]:
        return promotion_dict(self.store.get_promotion(promotion_id))

    def pending(self) -> list[dict[str, Any]]:
        return [promotion_dict(p) for p in self.store.pending_promotions()]

    def listing(self) -> list[dict[str, Any]]:
        return [promotion_dict(p) for p in self.store.promotions()]

    def holds(self, active: bool | None = True) -> list[dict[str, Any]]:
        return []

    def hold_env(self, hold_id: int) -> str:
        return self.store.get_hold(hold_id).env

    def release_hold(self, hold_id: int, user: str, reason: str) -> dict[str, Any]:
        self.calls.append(("release-hold", hold_id, user, reason))
        return {**self.store.get_hold(hold_id).as_dict(), "released_now": False}

    def holds_by_pair(self) -> Mapping[tuple[str, str], list[dict[str, Any]]]:
        return {}
