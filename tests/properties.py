"""Hypothesis settings for the property tests, and a time bound for each example.

Profiles (``HYPOTHESIS_PROFILE``, loaded by tests/conftest.py):

- ``ci`` (the default): derandomized and without an example database, so every run of
  the suite (a developer's, CI's) tries the very same examples and writes nothing to
  the work tree; ``max_examples`` small enough for a few seconds per property;
- ``long``: random examples, twenty times as many, for a run on purpose
  (``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/unit -k properties``).

Both print the reproduction blob of a failing example (``@reproduce_failure``). No
deadline: the machine is shared, and a deadline that fails under load is noise; the
fuzz targets bound each example with :func:`time_bound` instead, which catches a hang
(or a blow-up of seconds) without failing a merely slow run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from hypothesis import HealthCheck, Phase, settings

BASE_EXAMPLES = 100  # what the ``ci`` profile runs per property unless a test says less

settings.register_profile(
    "ci",
    max_examples=BASE_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=20 * BASE_EXAMPLES,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# ``ci`` without shrinking: the first failing example at once, while working on a property
settings.register_profile(
    "noshrink",
    settings.get_profile("ci"),
    phases=[p for p in Phase if p not in (Phase.shrink, Phase.explain)],
)


def load_profile() -> None:
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(n: int) -> int:
    """``n`` examples under the ``ci`` profile, as many times more as the loaded profile
    runs (a property that is costlier per example asks for fewer)."""
    return max(1, n * settings.default.max_examples // BASE_EXAMPLES)


class ExampleTimedOut(Exception):
    """One example ran longer than its bound: a hang, or a blow-up on this input."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise ExampleTimedOut in the block after ``seconds`` (SIGALRM, main thread).

    pytest-timeout uses the same timer for the whole test: its handler and remaining
    time are put back afterwards, less the time spent here."""
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ExampleTimedOut(f"the example took longer than {seconds} s")

    signal.signal(signal.SIGALRM, expire)
    bound = seconds if remaining <= 0 else min(seconds, remaining)
    signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        yield
    except ExampleTimedOut as exc:
        # raised afresh, without the frames it interrupted: pytest cannot always report a
        # traceback cut at an arbitrary instruction (a frame without a line number)
        raise ExampleTimedOut(str(exc)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining > 0:
            left = remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
