"""Named locks with a lease: one sync per app and environment, one active agent per store.

A lock is a row (name, holder, expires_at). Acquiring is one atomic statement, an
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that inserts the row or takes it over when
the lease has run out (or already belongs to the same holder), so exactly one of any
number of racing threads or processes wins, on SQLite (the write lock of BEGIN
IMMEDIATE serialises it) and on PostgreSQL (the row lock taken by ON CONFLICT, which
re-checks the WHERE against the committed row). A holder that dies simply stops renewing;
its lease runs out and the next one takes over.

Lease times are the server's: on PostgreSQL the statements themselves read ``now()``,
so agents on several hosts agree on when a lease ends whatever their own clocks say (a
host whose clock steps forward or back keeps its leases, and takes no one else's). A
SQLite store lives on one host and uses its clock. Only the holder renews, and it may
renew a lease that ran out as long as no one took it over (a stalled process, a clock
stepped forward): that is as safe as acquiring it again, without a gap.

reconcile/ holds ``sync_lock(app, env)`` around a sync and ``AGENT_LOCK`` for as long as
the agent runs; the CLI's ``sync`` takes the same sync lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from gitswarm.errors import GitswarmError, LockedError, StoreError
from gitswarm.model.operation import LockInfo
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.location import AGENT_LOCK as AGENT_LOCK
from gitswarm.store.operations import run
from gitswarm.store.schema import locks

log = logging.getLogger("gitswarm.store")


def sync_lock(app: str, env: str) -> str:
    """The name of the lock that allows one sync of ``app`` in ``env`` at a time."""
    return f"sync/{app}/{env}"


def new_holder_id() -> str:
    """A holder id unique to this process incarnation: host, pid and a random part
    (so a recycled pid is never mistaken for the process that had it before)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ttl(ttl_seconds: float) -> timedelta:
    if not ttl_seconds > 0:
        raise ValueError(f"a lease needs a positive TTL, not {ttl_seconds}")
    return timedelta(seconds=ttl_seconds)


class Lease:
    """A held lock, as the ``lock()`` context manager yields it."""

    def __init__(self, store: LocksMixin, name: str, holder: str, ttl_seconds: float) -> None:
        self._store = store
        self.name = name
        self.holder = holder
        self.ttl_seconds = ttl_seconds

    def renew(self) -> None:
        """Extend the lease by its TTL; ``LockedError`` if it was lost meanwhile (it ran
        out and another holder took it): the caller must stop what the lock protects."""
        if not self._store.renew_lock(self.name, self.holder, self.ttl_seconds):
            raise LockedError(
                f"lost the lock {self.name!r}: the lease of {self.holder} ran out and "
                "another holder took it (renew it more often than its TTL)"
            )

    @contextmanager
    def kept_alive(self, every: float) -> Iterator[None]:
        """Renew the lease in the background, every ``every`` seconds, for the duration
        of the block (a failed renewal is logged; the holder's next step finds it lost)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(every):
                try:
                    self.renew()
                except GitswarmError as exc:
                    log.error("could not renew %r: %s", self.name, exc.message)

        thread = threading.Thread(target=renew, name=f"lease-{self.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def __repr__(self) -> str:
        return f"Lease(name={self.name!r}, holder={self.holder!r})"


class LocksMixin:
    _db: Database

    def acquire_lock(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lock for ``ttl_seconds``: True if ``holder`` now holds it (newly, by
        taking over an expired lease, or again: acquiring a held lock renews it)."""
        ttl = _ttl(ttl_seconds)
        now = self._db.lease_now()
        stmt = self._db.insert(locks).values(
            name=name, holder=holder, acquired_at=now, expires_at=now + ttl
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[locks.c.name],
            set_={
                "holder": stmt.excluded.holder,
                # a holder renewing through acquire keeps its original acquisition time
                "acquired_at": sa.case(
                    (locks.c.holder == stmt.excluded.holder, locks.c.acquired_at),
                    else_=stmt.excluded.acquired_at,
                ),
                "expires_at": stmt.excluded.expires_at,
            },
            where=sa.or_(locks.c.expires_at <= now, locks.c.holder == holder),
        ).returning(locks.c.holder)
        with self._db.write(f"acquire lock {name!r}") as conn:
            won = conn.execute(upsert).first()
        return won is not None

    def renew_lock(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Extend the lease of ``holder`` to now + TTL. False if ``holder`` does not hold
        it: released, or taken over by another after it ran out. A lease that ran out
        and that no one took is still its holder's (the module docstring)."""
        ttl = _ttl(ttl_seconds)
        now = self._db.lease_now()
        with self._db.write(f"renew lock {name!r}") as conn:
            renewed = conn.execute(
                sa.update(locks)
                .where(locks.c.name == name, locks.c.holder == holder)
                .values(expires_at=now + ttl)
            ).rowcount
        return renewed == 1

    def release_lock(self, name: str, holder: str) -> bool:
        """Give the lock up; False if ``holder`` did not hold it (any more)."""
        with self._db.write(f"release lock {name!r}") as conn:
            released = conn.execute(
                sa.delete(locks).where(locks.c.name == name, locks.c.holder == holder)
            ).rowcount
        return released == 1

    def lock_holder(self, name: str) -> LockInfo | None:
        """Who holds the lock now; None when it is free (never taken, released, or its
        lease ran out)."""
        with self._db.read(f"read lock {name!r}") as conn:
            now = self._db.lease_now()  # PostgreSQL: the server's clock, in the statement
            query = queries.lock_holder(name, now if isinstance(now, datetime) else None)
            found = queries.locks_from(run(conn, query))
        return found[0] if found else None

    @contextmanager
    def lock(
        self,
        name: str,
        holder: str,
        ttl_seconds: float,
        wait: float = 0.0,
        *,
        poll: float = 0.1,
    ) -> Iterator[Lease]:
        """Hold the lock for the block, waiting up to ``wait`` seconds for it; then
        ``LockedError`` naming who holds it since when. Released when the block ends.

        The lease is not renewed in the background: a block that may outlast
        ``ttl_seconds`` calls ``lease.renew()`` as it goes.
        """
        deadline = time.monotonic() + max(wait, 0.0)
        delay = min(0.01, poll)
        while not self.acquire_lock(name, holder, ttl_seconds):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(self._busy_message(name, wait))
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, poll)
        try:
            yield Lease(self, name, holder, ttl_seconds)
        finally:
            try:
                self.release_lock(name, holder)
            except StoreError as exc:
                # The block's work is done (a deploy happened): a store that refuses the
                # release must not turn it into a failure. The lease runs out by itself.
                log.warning(
                    "could not release lock %r (%s); it frees itself within %gs",
                    name, exc.message, ttl_seconds,
                )  # fmt: skip

    def _busy_message(self, name: str, wait: float) -> str:
        waited = f" after waiting {wait:g}s" if wait > 0 else ""
        info = self.lock_holder(name)
        if info is None:  # released between our attempt and this look
            return f"lock {name!r} is busy{waited}; try again"
        return (
            f"lock {name!r} is held by {info.holder} since "
            f"{info.acquired_at:%Y-%m-%d %H:%M:%S} UTC (lease until "
            f"{info.expires_at:%H:%M:%S} UTC){waited}"
        )
