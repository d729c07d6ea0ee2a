"""Events worth telling people about (notify/), with a fingerprint for "once per failure"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitswarm.errors import Reason

EventKind = Literal[
    "sync_succeeded",
    "sync_failed",
    "drift_detected",
    "drift_healed",
    "rollback",
    "signature_rejected",
    "policy_violation",
    "promotion_pending",
    "promotion_committed",
    "promotion_rejected",
    "promotion_expired",
    "promotion_failed",
]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    app: str
    env: str
    revision: str | None
    message: str
    reason: Reason | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Equal for the same failure seen again, so it is notified only once."""
        return f"{self.kind}|{self.revision}|{self.reason}"

    @property
    def title(self) -> str:
        words = self.kind.replace("_", " ")
        rev = f" @ {self.revision[:12]}" if self.revision else ""
        return f"gitswarm: {self.app}/{self.env} {words}{rev}"

    def body(self) -> str:
        lines = [self.message]
        if self.reason:
            lines.append(f"reason: {self.reason}")
        return "\n".join(lines)
