"""Retention: the agent's job that prunes operations older than the configured number of
days (and audit events, only when the operator sets a limit for them). Started by
`gitswarm serve` (cli/serve.py) when ``retention:`` is set; the deleting itself, and
what it never deletes, is the store's (store/history.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gitswarm.errors import GitswarmError
from gitswarm.store import Store
from gitswarm.store.history import Pruned

log = logging.getLogger("gitswarm.retention")

EVERY = 6 * 3600.0  # seconds between rounds; the first runs a minute after start
FIRST = 60.0


@dataclass(frozen=True)
class RetentionSettings:
    operations_days: int = 0  # 0: keep every operation
    audit_days: int = 0  # 0: keep the audit trail (the default: audit kept unless configured)

    @property
    def enabled(self) -> bool:
        return self.operations_days > 0 or self.audit_days > 0


def prune_once(
    store: Store, settings: RetentionSettings, now: Callable[[], datetime] | None = None
) -> Pruned:
    moment = (now or (lambda: datetime.now(UTC)))()
    ops = moment - timedelta(days=settings.operations_days) if settings.operations_days else None
    audit = moment - timedelta(days=settings.audit_days) if settings.audit_days else None
    pruned = store.prune_history(operations_before=ops, audit_before=audit)
    if pruned.operations or pruned.audit_events:
        log.info(
            "retention: pruned %d operation(s) and %d audit event(s)",
            pruned.operations,
            pruned.audit_events,
        )
    return pruned


def start_retention(
    store: Store, settings: RetentionSettings, stop: threading.Event, every: float = EVERY
) -> threading.Thread | None:
    """Prune in the background until ``stop`` is set; None when nothing is to be pruned."""
    if not settings.enabled:
        return None

    def loop() -> None:
        wait = FIRST
        while not stop.wait(wait):
            wait = every
            try:
                prune_once(store, settings)
            except GitswarmError as exc:
                log.warning("retention: %s; trying again later", exc.message)

    thread = threading.Thread(target=loop, name="gitswarm-retention", daemon=True)
    thread.start()
    return thread
