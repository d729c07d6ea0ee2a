"""Values the running agent and its HTTP API exchange (api/port.py re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitswarm.model.operation import Trigger


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)  # name -> {"ok": bool, "detail": str}


@dataclass(frozen=True)
class TriggerRequest:
    """Ask the loop to reconcile. None for app/env means every app / every environment.
    Requests coalesce: a burst of them causes at most one pending reconcile per pair."""

    trigger: Trigger
    app: str | None = None
    env: str | None = None
    revision: str | None = None  # a pushed commit id, when a webhook says which
    ref: str | None = None  # the pushed ref (refs/heads/main), to ignore other branches
    actor: str | None = None
    reason: str = ""
    # An admin's override of a closed deployment window: the reason, audited by the sync.
    override_window: str | None = None
