"""Cron windows: a cron expression and a duration (pure; windows.py has the other kinds).

settings.py parses ``{schedule: "0 22 * * 1-5", duration: 2h}`` into a ``CronWindow``;
the window evaluation of windows.py asks it for its intervals like any other window.
The cronsim library parses and matches the expression (Debian's cron, which is Vixie
cron, is its reference); placing each matching wall-clock minute on the timeline follows
the same daylight-saving rule as the weekly windows (windows.py's docstring): a start in
the skipped spring hour moves forward by the gap, one in the repeated autumn hour is its
first occurrence -- not cron's own habit of running a skipped job at 03:00.
Error messages say which part of the expression is wrong; settings.py adds file and line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from cronsim import CronSim, CronSimError

from gitswarm.policy.windows import Interval, Window, WindowSyntaxError, merge_intervals

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names) of the five fields, for messages
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _CRON_DAYS),
)
_ANY_TIME = datetime(2000, 1, 1)  # cronsim needs a start; parsing does not depend on it


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), read by
    cronsim: ``*``, lists, ranges, steps, names (``jan``, ``mon``), day-of-week 0 and 7
    for Sunday, and cronsim's ``L`` (last day of the month), ``LW`` (its last weekday),
    ``5L`` (its last Friday), ``1#2`` (its second Monday). As in Vixie cron, when both day
    fields are restricted (neither starts with ``*``) a day matching either one matches.

    Times are wall-clock minutes of the window's time zone: :meth:`matches` yields naive
    datetimes, and CronWindow places them in UTC (module docstring: daylight saving)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # 1-31 (``L``/``LW`` are not listed)
    months: frozenset[int]
    weekdays: frozenset[int]  # 0=Sunday (``5L``/``1#2`` are not listed)
    _sim: CronSim = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = text.split()
        if len(fields) != 5:
            raise WindowSyntaxError(
                f"cron schedule {text!r} needs 5 fields: minute hour day month weekday"
            )
        try:
            sim = CronSim(text, _ANY_TIME)
        except CronSimError:
            raise _cron_error(text, fields) from None
        return cls(
            text=text,
            minutes=frozenset(sim.minutes),
            hours=frozenset(sim.hours),
            days=frozenset(d for d in sim.days if d > 0),
            months=frozenset(sim.months),
            weekdays=frozenset(d % 7 for d in sim.weekdays if isinstance(d, int)),
            _sim=sim,
        )

    def day_matches(self, day: date) -> bool:
        return day.month in self.months and self._sim.match_day(day)

    def matches(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every matching wall-clock minute in ``[start, end)`` (naive datetimes), in order.

        cronsim decides which days match (the Vixie day rule, ``L``, ``#``); on each such
        day every hour x minute of the expression matches."""
        times = [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]
        day = start.date()
        while day <= end.date():
            if self.day_matches(day):
                for at in times:
                    t = datetime.combine(day, at)
                    if t >= end:
                        return
                    if t >= start:
                        yield t
            day += timedelta(days=1)


def _cron_error(text: str, fields: Sequence[str]) -> WindowSyntaxError:
    """Why cronsim refuses ``text``, in words: the first term it refuses on its own."""
    for index, (name, lo, hi, names) in enumerate(_CRON_FIELDS):
        for term in fields[index].split(","):
            probe = ["*"] * 5
            probe[index] = term
            try:
                CronSim(" ".join(probe), _ANY_TIME)
            except CronSimError:
                return WindowSyntaxError(
                    f"cron schedule {text!r}: {_cron_why(term, name, lo, hi, names)}"
                )
    return WindowSyntaxError(
        f"cron schedule {text!r} never matches: its day of month does not occur in its months"
    )


def _cron_why(term: str, name: str, lo: int, hi: int, names: Sequence[str]) -> str:
    body, _, step = term.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return f"bad step in {term!r}"
    ends = [] if body == "*" else body.lower().split("-")
    for token in ends:
        if token.isdigit() and not lo <= int(token) <= hi:
            return f"{token!r} is not in {lo}-{hi}"
    values = [names.index(t) if t in names else int(t) for t in ends if t in names or t.isdigit()]
    if len(ends) == len(values) == 2 and values[0] > values[1]:
        return f"range {body!r} runs backwards"
    words = f"a number in {lo}-{hi}" + (f" or a name ({names[0]}..{names[-1]})" if names else "")
    return (
        f"{term!r} is not a {name}: write {words}, *, a list (1,3), a range (1-5) or a step (*/15)"
    )


@dataclass(frozen=True)
class CronWindow(Window):
    zone: tzinfo
    cron: Cron
    duration: timedelta

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        # Wall clock and UTC disagree by up to a few hours around DST changes: scan a
        # little wider and filter in UTC.
        margin = timedelta(hours=3)
        lo = (start - self.duration - margin).astimezone(self.zone).replace(tzinfo=None)
        hi = (end + margin).astimezone(self.zone).replace(tzinfo=None)
        found = []
        for local in self.cron.matches(lo, hi):
            s = local.replace(tzinfo=self.zone).astimezone(UTC)
            e = s + self.duration
            if e > start and s < end:
                found.append((s, e))
        return merge_intervals(found)
