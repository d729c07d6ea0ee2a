"""``Store``: the one object the rest of gitswarm talks to for recorded state.

Each group of records lives in its own module (operations, locks, status and bad
revisions, baselines, promotions, holds, notifications, audit, webhook deliveries, export and
retention, DORA, users and sessions, the dashboard's overview, what the agent saw of
Git); ``Store`` puts them behind one connection pool. Open one per process (the agent,
a CLI command) and pass it in; it is safe to share between threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType

from gitswarm.model.instant import Instant
from gitswarm.store.accounts import AccountsMixin
from gitswarm.store.audit import AuditMixin
from gitswarm.store.baselines import BaselinesMixin
from gitswarm.store.db import BUSY_TIMEOUT, Clock, Database, boot_id, utcnow
from gitswarm.store.deliveries import DeliveriesMixin
from gitswarm.store.dora import DoraMixin
from gitswarm.store.history import HistoryMixin
from gitswarm.store.holds import HoldsMixin
from gitswarm.store.locks import LocksMixin
from gitswarm.store.notifications import NotificationsMixin
from gitswarm.store.operations import OperationsMixin
from gitswarm.store.overview import OverviewMixin
from gitswarm.store.promotions import PromotionsMixin
from gitswarm.store.source import SourceMixin
from gitswarm.store.status import StatusMixin


class Store(
    OperationsMixin,
    LocksMixin,
    StatusMixin,
    BaselinesMixin,
    PromotionsMixin,
    HoldsMixin,
    NotificationsMixin,
    AuditMixin,
    DeliveriesMixin,
    HistoryMixin,
    DoraMixin,
    AccountsMixin,
    OverviewMixin,
    SourceMixin,
):
    """The state store at ``location`` (a SQLite path or a database URL; None: the
    default location), opened and migrated to the current schema."""

    def __init__(
        self,
        location: str | None = None,
        *,
        clock: Clock = utcnow,
        busy_timeout: float = BUSY_TIMEOUT,
        lease_clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        boot: Callable[[], str | None] = boot_id,
    ) -> None:
        self._db = Database(
            location,
            clock=clock,
            busy_timeout=busy_timeout,
            lease_clock=lease_clock,
            monotonic=monotonic,
            boot=boot,
        )

    def instant(self) -> Instant:
        """Now as this store records it for durations: wall time, boot and monotonic
        reading (model/instant.py; a soak is measured from an operation's ``finished``
        to this)."""
        return self._db.instant()

    def atomic(self, doing: str) -> AbstractContextManager[None]:
        """The store's writes of this thread inside the block in one transaction (the
        end of an operation and the status after it: a reader never sees one without
        the other)."""
        return self._db.atomic(doing)

    def shared_now(self) -> datetime:
        """Now by the clock every agent on this store shares: PostgreSQL's on PostgreSQL,
        the host's on SQLite (pending promotions' expiry, promote/pipeline.py)."""
        return self._db.shared_now()

    @property
    def location(self) -> str:
        """The database URL, password hidden: safe to show."""
        return self._db.display

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.location!r})"
