"""``PromotionService``: promotion as the running agent offers it to the HTTP API.

`gitswarm serve` builds one next to the Agent, over the same Reconciler, and passes it
to ``create_app``; the API's promotion routes (api/promotions.py) call only this. Who
may do what is decided by the API (its one authorization call) before a method here
runs; the rules of promotion itself (distinct approvers, no self-approval, one commit
per promotion) are the Promoter's and hold for the CLI too.

One lock serialises promotions, approvals and automation rounds in this process: two
approvals arriving at once are decided one after the other (and the store's
compare-and-set makes a second agent on one database safe as well).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitswarm.errors import UsageError
from gitswarm.model.operation import Promotion, Trigger
from gitswarm.promote.core.tags import parse_image_args
from gitswarm.promote.pipeline import Promoter, PromoteRequest, PromotionOutcome


def promotion_dict(p: Promotion) -> dict[str, Any]:
    """One stored promotion as the API and `gitswarm promotions --json` show it."""
    return {
        "id": p.id,
        "app": p.app,
        "from": p.from_env,
        "to": p.to_env,
        "images": dict(p.images),
        "status": p.status,
        "requested_by": p.requested_by,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "gates": [dict(g) for g in p.gates],
        "commit": p.commit_sha,
        "approved_by": [d.user for d in p.decisions if d.decision == "approve"],
        "rejected_by": [d.user for d in p.decisions if d.decision == "reject"],
    }


@dataclass
class PromotionService:
    promoter: Promoter
    lock: threading.Lock = field(default_factory=threading.Lock)

    def promote(
        self,
        app: str,
        source: str,
        target: str,
        *,
        images: Sequence[str] = (),
        dry_run: bool = False,
        actor: str,
        trigger: Trigger = "api",
    ) -> PromotionOutcome:
        request = PromoteRequest(
            app,
            source,
            target,
            parse_image_args(images),
            dry_run=dry_run,
            actor=actor,
            trigger=trigger,
        )
        with self.lock:
            return self.promoter.promote(request)

    def approve(self, promotion_id: int, user: str, comment: str = "") -> PromotionOutcome:
        with self.lock:
            return self.promoter.approve(promotion_id, user, comment, trigger="api")

    def reject(self, promotion_id: int, user: str, reason: str) -> PromotionOutcome:
        with self.lock:
            return self.promoter.reject(promotion_id, user, reason, trigger="api")

    def target_of(self, promotion_id: int) -> str:
        """The environment a promotion goes to (what an approver must hold a role in)."""
        return self.promoter.store.get_promotion(promotion_id).to_env

    def pending(self) -> list[dict[str, Any]]:
        with self.lock:
            self.promoter.expire()
        return [promotion_dict(p) for p in self.promoter.store.pending_promotions()]

    def listing(self) -> list[dict[str, Any]]:
        return [promotion_dict(p) for p in self.promoter.store.promotions()]

    def get(self, promotion_id: int) -> dict[str, Any]:
        return promotion_dict(self.promoter.store.get_promotion(promotion_id))

    def holds(self, active: bool | None = True) -> list[dict[str, Any]]:
        return [h.as_dict() for h in self.promoter.store.holds(active=active)]

    def hold_env(self, hold_id: int) -> str:
        return self.promoter.store.get_hold(hold_id).env

    def release_hold(self, hold_id: int, user: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise UsageError("releasing a hold needs a reason: it goes into the audit trail")
        store = self.promoter.store
        released = store.release_hold(hold_id, user, reason)
        hold = store.get_hold(hold_id)
        if released:
            store.audit(
                user, "hold-released", f"{hold.app}/{hold.env}", {"hold": hold_id, "why": reason}
            )
        return {**hold.as_dict(), "released_now": released}

    def holds_by_pair(self) -> Mapping[tuple[str, str], list[dict[str, Any]]]:
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for hold in self.promoter.store.holds():
            out.setdefault((hold.app, hold.env), []).append(hold.as_dict())
        return out


__all__ = ["PromotionService", "promotion_dict"]
