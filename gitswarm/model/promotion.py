"""Holds: what stops automation from re-applying what a rollback removed (SPEC 4).

The store keeps them (store/holds.py); promote/ creates one when it sees a rollback and
releases it on a newer tag or a person's word; `gitswarm status`, `gitswarm hold` and
the API show them. Plain frozen values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Hold:
    """After a rollback of ``app`` in ``env``: image automation and automatic promotion
    leave it alone until a newer tag than ``images`` arrives or a person releases it."""

    id: int
    app: str
    env: str
    reason: str
    created_at: datetime
    created_by: str
    images: Mapping[str, str] = field(default_factory=dict)  # repository -> rolled-back tag
    operation_id: int | None = None  # the rollback it came from
    from_revision: str | None = None  # what was rolled back
    to_revision: str | None = None  # what it was rolled back to
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str = ""

    @property
    def active(self) -> bool:
        return self.released_at is None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "app": self.app,
            "env": self.env,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "images": dict(self.images),
            "operation_id": self.operation_id,
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "active": self.active,
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "released_by": self.released_by,
            "release_reason": self.release_reason,
        }
