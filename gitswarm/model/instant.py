"""A moment as the host saw it: wall time for the records, a monotonic reading (and the
boot it belongs to) for durations.

A soak (promote/pipeline.py ``source_healthy_for``) or any other "for how long" between
a stored record and now must not follow a step of the wall clock: NTP correcting a
drifted host, a VM resumed, an operator's ``date -s``. The store writes an ``Instant``
with the operation that starts such a duration (store/operations.py); ``elapsed`` takes
the monotonic difference when both readings come from the same boot (Linux's
CLOCK_MONOTONIC is one clock for every process of a host, containers included), and
falls back to wall time, never negative, across a reboot or between hosts.

Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A record dated later than "now" by more than this was written by a clock that has since
# stepped back (or by a host running ahead): a session or a pending promotion dated so is
# over, or a captured cookie would outlive its TTL by the size of the step.
CLOCK_SKEW = timedelta(seconds=5)


def dated_in_the_future(at: datetime, now: datetime) -> bool:
    """``at`` lies beyond ``now`` by more than the allowed skew (``CLOCK_SKEW``)."""
    return at > now + CLOCK_SKEW


@dataclass(frozen=True)
class Instant:
    wall: datetime
    boot: str | None = None  # the kernel's boot id; None: unknown (an older record)
    mono: float | None = None  # seconds on that boot's monotonic clock


def elapsed(since: Instant, now: Instant) -> timedelta:
    """How long from ``since`` to ``now``: by the monotonic clock on the same boot, by
    the wall clock (at least zero) otherwise."""
    if (
        since.boot is not None
        and since.boot == now.boot
        and since.mono is not None
        and now.mono is not None
    ):
        return timedelta(seconds=max(0.0, now.mono - since.mono))
    return max(timedelta(), now.wall - since.wall)


__all__ = ["Instant", "elapsed"]
