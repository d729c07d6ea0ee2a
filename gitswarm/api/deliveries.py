"""Which webhook deliveries were already acted on: the memory that refuses a replay.

The webhook route claims a delivery's keys (``webhooks.Provider.keys``: the provider's
delivery id, a digest of the signed content) before it triggers anything; a claim that
finds any of them already taken is a repeat and changes nothing. If the trigger then
fails, the route releases the claim, so the provider's own redelivery of a failed
delivery still works.

``gitswarm serve`` passes the state store (``Store.claim_webhook_delivery``: a table
that survives restarts and is shared by agents on one PostgreSQL). ``MemoryDeliveries``
is the default of ``ApiSettings``, for tests and an API without a store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

# How long a delivery is remembered: longer than forges let a delivery be redelivered
# (github.com: 3 days, GitHub Enterprise Server: 7).
KEEP_SECONDS = 7 * 24 * 3600


class DeliveryLog(Protocol):
    def claim_webhook_delivery(self, provider: str, keys: Sequence[str]) -> bool:
        """Remember ``keys``; True when none was seen before (act on the delivery)."""
        ...

    def release_webhook_delivery(self, provider: str, keys: Sequence[str]) -> None:
        """Forget ``keys`` claimed by a delivery that could not be acted on."""
        ...


class MemoryDeliveries:
    """A DeliveryLog in this process's memory: thread-safe, pruned as it goes."""

    def __init__(
        self, keep: float = KEEP_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keep = keep
        self.clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim_webhook_delivery(self, provider: str, keys: Sequence[str]) -> bool:
        now = self.clock()
        with self._lock:
            # dicts keep insertion order: the oldest entries come first
            for seen, at in list(self._seen.items()):
                if now - at <= self.keep:
                    break
                del self._seen[seen]
            new = not any((provider, k) in self._seen for k in keys)
            for key in keys:
                self._seen.setdefault((provider, key), now)
            return new

    def release_webhook_delivery(self, provider: str, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._seen.pop((provider, key), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
