"""``StatusReads``: the reads of recorded state that ``gitswarm status`` and the render
half of the Reconciler make — the port between them and the store.

Two implementations: ``gitswarm.store.Store`` (SQLAlchemy, SQLite or PostgreSQL) and
``gitswarm.store.quick.LocalReads`` (Python's sqlite3 on a current local SQLite file, so
that ``status`` never imports SQLAlchemy). Both run store/queries.py's SQL text and
return the same records (tests/unit/test_store_quick.py). Nothing here writes: a caller
typed with ``StatusReads`` cannot record anything (mypy says so), which is what lets
``status`` hand the quick reads to a Reconciler (reconcile/sync.py) without a cast.
"""

from __future__ import annotations

from typing import Protocol

from gitswarm.model.operation import AgentSource, AppStatus, Baseline, LockInfo
from gitswarm.model.promotion import Hold


class StatusReads(Protocol):
    def get_status(self, app: str, env: str) -> AppStatus | None: ...

    def all_statuses(self) -> list[AppStatus]: ...

    def baselines(self, app: str, env: str) -> dict[str, Baseline]: ...

    def holds(
        self, app: str | None = None, env: str | None = None, *, active: bool | None = True
    ) -> list[Hold]: ...

    def lock_holder(self, name: str) -> LockInfo | None:
        """Who holds the lock now; None when it is free or its lease ran out."""
        ...

    def agent_source(self, name: str) -> AgentSource | None:
        """What the agent holding lock ``name`` last recorded of Git; None if none did."""
        ...

    def close(self) -> None: ...


__all__ = ["StatusReads"]
