"""One API application per test module and settings, with each test's own objects.

``create_app`` builds 30-odd FastAPI routes (pydantic adapters for every parameter):
0.2 s on a quiet machine, ~2.5 s per call with the suite's three workers, and the API's
unit tests called it ~120 times. A module builds its app once over ``Seats`` — stand-ins
for the agent, the metrics, the audit sink and the webhook delivery log — and each test
seats its own fresh objects for its duration (``SharedApp.bound``):

- nothing a test can change is shared: the objects behind the seats are the test's, the
  app holds no state of its own without accounts (the dashboard's sign-in throttle is
  only used with accounts: a settings object that has them is refused) but the audit
  budget of requests without credentials (api/refusals.py), whose window each test's
  end closes: its summary rows go to that test's own sink, the next test starts afresh;
- an empty seat raises: a route that read a per-test object while the app was built
  (and so would keep the first test's) fails at once instead of reading stale state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from gitswarm.api import ApiSettings, create_app
from gitswarm.api.deliveries import MemoryDeliveries
from gitswarm.reconcile.metrics import Metrics


class Seat:
    """Forwards attribute reads and calls to the object seated in it."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_target", None)

    def seat(self, target: object) -> None:
        object.__setattr__(self, "_target", target)

    def _now(self) -> Any:
        target = object.__getattribute__(self, "_target")
        if target is None:
            name = object.__getattribute__(self, "_name")
            raise AssertionError(f"the shared app read its {name} outside a test")
        return target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._now(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._now()(*args, **kwargs)


@dataclass
class SharedApp:
    app: Any
    seats: dict[str, Seat] = field(default_factory=dict)
    audit: Any = None  # the settings' own sink (stateless: the log), unless a test seats one

    @contextmanager
    def bound(self, **objects: object) -> Iterator[Any]:
        """Seat this test's objects (fresh metrics and delivery log unless given)."""
        objects.setdefault("audit", self.audit)
        objects.setdefault("metrics", Metrics())
        objects.setdefault("deliveries", MemoryDeliveries())
        if set(objects) != set(self.seats):
            raise AssertionError(f"seat all of {sorted(self.seats)}, not {sorted(objects)}")
        for name, target in objects.items():
            self.seats[name].seat(target)
        try:
            yield self.app
        finally:
            try:
                self.app.state.audit_budget.flush(final=True)  # into this test's sink
                for lines in self.app.state.log_budgets:  # the next test logs afresh
                    lines.flush(final=True)
            finally:
                for seat in self.seats.values():
                    seat.seat(None)


def shared_app(settings: ApiSettings) -> SharedApp:
    """The app of ``settings`` (audit and deliveries are seats; no accounts)."""
    if settings.accounts is not None:
        raise AssertionError("an app with accounts keeps a sign-in throttle: build one per test")
    seats = {name: Seat(name) for name in ("agent", "metrics", "audit", "deliveries")}
    built = replace(settings, audit=seats["audit"], deliveries=seats["deliveries"])
    app = create_app(seats["agent"], built, seats["metrics"])  # type: ignore[arg-type]
    return SharedApp(app, seats, settings.audit)
