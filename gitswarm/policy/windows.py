"""Deployment windows: when an environment may change, as pure time arithmetic.

settings.py parses the ``deployment_windows`` block into the window types here; the gate
(gate.py) and the agent call :func:`window_state` with an injected clock (``now``), so
tests control time and nothing here reads the system clock.

Three kinds of window, each in its own time zone (an IANA name such as
``Europe/Berlin``; default: the block's ``timezone``, else UTC):

- weekly, written as text: ``"Mon-Thu 09:00-16:00 Europe/Berlin"``, ``"Sat,Sun 10:00-12:00"``,
  ``"daily 22:00-02:00"`` (an end at or before the start runs into the next day),
  ``"Fri 16:00-Mon 08:00"`` (a span across days); ``weekdays``/``weekends``/``daily``
  name day sets;
- cron, as Argo CD's sync windows: ``{schedule: "0 22 * * 1-5", duration: 2h}`` -- each
  minute the 5-field cron expression matches (local time) opens the window for
  ``duration`` (cron.py: the expression is read by the cronsim library, with Vixie
  cron's rules);
- dates, for freezes: ``{from: 2025-12-20, until: 2026-01-06}`` -- a date alone in
  ``until`` means through the end of that day.

Semantics, as Argo CD users know them: a deny window that is active closes the
environment, whatever the allow windows say; when allow windows exist, the environment is
open only inside one; with no windows it is always open. Windows are half-open
intervals ``[start, end)``.

Daylight saving: window edges are wall-clock times. An edge that falls into the hour
skipped in spring moves forward by the gap (02:30 becomes 03:30); an edge in the repeated
hour in autumn is its first occurrence. A window therefore lasts an hour less or more on
those nights, as a wall-clock rule should. Cron windows follow the same rule (a start at
02:30 opens at 03:30 on the spring night, and once on the autumn night), not cron's own
habit of running a skipped job at 03:00.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from gitswarm.model.policy import WindowState

HORIZON = timedelta(days=366)  # how far ahead next_open / closes_at are searched
_SCAN_STEP = timedelta(days=7)

Interval = tuple[datetime, datetime]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    "daily": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
    "*": tuple(range(7)),
}


class WindowSyntaxError(ValueError):
    """A window that cannot be parsed; settings.py turns it into a ConfigError. ``key``:
    which key of a window mapping is wrong (``schedule``, ``duration``, ...), when known."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# --- the window kinds ------------------------------------------------------------------


@dataclass(frozen=True)
class Window(ABC):
    label: str  # how the user wrote it, for messages

    @abstractmethod
    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """The window's UTC intervals that overlap ``[start, end)``, sorted and merged."""


@dataclass(frozen=True)
class WeeklyWindow(Window):
    zone: tzinfo
    # (weekday of the start 0=Mon, start minute, days until the end, end minute)
    spans: tuple[tuple[int, int, int, int], ...]

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        first = start.astimezone(self.zone).date() - timedelta(days=8)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        found: list[Interval] = []
        day = first
        while day <= last:
            for weekday, start_min, offset, end_min in self.spans:
                if day.weekday() != weekday:
                    continue
                s = _wall(day, start_min, self.zone)
                e = _wall(day + timedelta(days=offset), end_min, self.zone)
                if s < e and e > start and s < end:
                    found.append((s, e))
            day += timedelta(days=1)
        return merge_intervals(found)


@dataclass(frozen=True)
class DateWindow(Window):
    start: datetime
    end: datetime

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        if self.end > start and self.start < end:
            return [(self.start, self.end)]
        return []


@dataclass(frozen=True)
class WindowSettings:
    """The parsed ``deployment_windows`` block."""

    allow: tuple[Window, ...] = ()
    deny: tuple[Window, ...] = ()
    timezone: str = "UTC"

    @property
    def configured(self) -> bool:
        return bool(self.allow or self.deny)


# --- evaluation ------------------------------------------------------------------------


def evaluate_windows(settings: WindowSettings, now: datetime) -> WindowState:
    """Whether ``now`` lies in a deployment window, and when that changes."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)
    if not settings.configured:
        return WindowState(open=True, reason="no deployment windows are configured")
    state = _Scan(settings, now, now + _SCAN_STEP)
    is_open, reason = state.at(now)
    if is_open:
        return WindowState(open=True, reason=reason, closes_at=_next_change(settings, now, False))
    return WindowState(open=False, reason=reason, next_open=_next_change(settings, now, True))


class _Scan:
    """The intervals of every window over one stretch of time."""

    def __init__(self, settings: WindowSettings, start: datetime, end: datetime) -> None:
        self.deny = [(w, w.intervals(start, end)) for w in settings.deny]
        # A deny window over the whole stretch (a long freeze) decides it: skip the allow
        # windows, which may be costly (a per-minute cron over a year).
        self.denied_throughout = any(
            s <= start and e >= end for _, ivs in self.deny for s, e in ivs
        )
        self.allow = (
            [] if self.denied_throughout else [(w, w.intervals(start, end)) for w in settings.allow]
        )

    def edges(self, start: datetime, end: datetime) -> list[datetime]:
        points = {start}
        for _, ivs in (*self.allow, *self.deny):
            for s, e in ivs:
                points.update(p for p in (s, e) if start < p < end)
        return sorted(points)

    def at(self, t: datetime) -> tuple[bool, str]:
        denied = _active(self.deny, t)
        if denied:
            return False, f"inside deny window {denied[0].label}"
        if not self.allow:
            return True, "no deny window is active"
        allowed = _active(self.allow, t)
        if allowed:
            return True, f"inside allow window {allowed[0].label}"
        labels = "; ".join(w.label for w, _ in self.allow)
        return False, f"outside every allow window ({labels})"


def _active(windows: Sequence[tuple[Window, list[Interval]]], t: datetime) -> list[Window]:
    return [w for w, ivs in windows if any(s <= t < e for s, e in ivs)]


def _next_change(settings: WindowSettings, now: datetime, want_open: bool) -> datetime | None:
    """The first instant after ``now`` at which the environment is open (or closed)."""
    start, horizon = now, now + HORIZON
    while start < horizon:
        end = min(start + _SCAN_STEP, horizon)
        scan = _Scan(settings, start, end)
        if scan.denied_throughout and want_open:
            start = end
            continue
        for t in scan.edges(start, end):
            if t > now and scan.at(t)[0] == want_open:
                return t
        start = end
    return None


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined."""
    merged: list[Interval] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _wall(day: date, minute: int, zone: tzinfo) -> datetime:
    """A wall-clock minute of a local day, in UTC (minute 1440 is the next midnight)."""
    day += timedelta(days=minute // 1440)
    minute %= 1440
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(UTC)


# --- parsing ---------------------------------------------------------------------------

_TIME = r"(?:[01]?\d|2[0-4]):[0-5]\d"
_WEEKLY = re.compile(
    rf"^(?:(?P<days>[A-Za-z*][A-Za-z,\-*\s]*?)\s+)?(?P<start>{_TIME})\s*-\s*"
    rf"(?:(?P<endday>[A-Za-z]+)\s+)?(?P<end>{_TIME})(?:\s+(?P<zone>\S+))?$"
)


def parse_weekly(text: str, zone: tzinfo, zone_name: str) -> WeeklyWindow:
    """``[DAYS] HH:MM-[DAY ]HH:MM [ZONE]`` -- see the module docstring."""
    match = _WEEKLY.match(text.strip())
    if match is None:
        raise WindowSyntaxError(
            f"cannot read window {text!r}: write e.g. 'Mon-Thu 09:00-16:00 Europe/Berlin' "
            "or 'Fri 16:00-Mon 08:00'"
        )
    if match["zone"]:
        zone_name = match["zone"]
        zone = load_zone(zone_name)
    start, end = _minute(match["start"]), _minute(match["end"])
    if start == 1440:
        raise WindowSyntaxError(f"window {text!r} starts at 24:00; write 00:00")
    days = parse_days(match["days"] or "daily")
    spans: list[tuple[int, int, int, int]] = []
    if match["endday"]:
        if len(days) != 1:
            raise WindowSyntaxError(
                f"window {text!r}: a span across days starts on one day, e.g. 'Fri 16:00-Mon 08:00'"
            )
        end_day = parse_days(match["endday"])
        if len(end_day) != 1:
            raise WindowSyntaxError(f"window {text!r}: the end must be a single day")
        offset = (end_day[0] - days[0]) % 7
        if offset == 0 and end <= start:
            offset = 7
        spans.append((days[0], start, offset, end))
    else:
        if start == end:
            raise WindowSyntaxError(f"window {text!r} is empty (start equals end)")
        offset = 0 if end > start else 1
        spans.extend((d, start, offset, end) for d in days)
    label = text.strip() if match["zone"] else f"{text.strip()} {zone_name}"
    return WeeklyWindow(label=label, zone=zone, spans=tuple(spans))


def parse_days(text: str) -> tuple[int, ...]:
    """``Mon-Thu``, ``Mon,Wed,Fri``, ``Fri-Mon`` (wraps), ``weekdays``, ``daily``."""
    days: list[int] = []
    for part in text.lower().split(","):
        part = part.strip()
        if part in _DAY_ALIASES:
            days.extend(_DAY_ALIASES[part])
            continue
        first, _, last = part.partition("-")
        a = _day(first, text)
        if not last:
            days.append(a)
            continue
        b = _day(last, text)
        days.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return tuple(sorted(set(days)))


def _day(name: str, text: str) -> int:
    key = name.strip()[:3]
    if len(name.strip()) < 3 or key not in DAY_NAMES:
        raise WindowSyntaxError(f"unknown day {name!r} in {text!r} (use Mon..Sun)")
    return DAY_NAMES.index(key)


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if value > 1440:
        raise WindowSyntaxError(f"{text!r} is not a time of day")
    return value


def load_zone(name: str) -> tzinfo:
    """An IANA time zone. ``UTC`` always works, even without the system's tz database."""
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    # Imported here: zoneinfo reads the tz database (system data, cached by the module).
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WindowSyntaxError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from exc


_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?$")
MAX_DURATION = timedelta(days=31)


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``1d``."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None:
        raise WindowSyntaxError(f"cannot read duration {text!r} (write e.g. 2h, 90m, 1h30m, 1d)")
    d, h, m = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=d, hours=h, minutes=m)
    if not timedelta(0) < value <= MAX_DURATION:
        raise WindowSyntaxError(f"duration {text!r} must be more than 0 and at most 31 days")
    return value


def parse_instant(value: object, zone: tzinfo, *, end: bool) -> datetime:
    """A ``from``/``until`` value: a date, a local date-time, or one with an offset.
    A date alone as an end means the end of that day."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value + timedelta(days=1 if end else 0), time())
    elif isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                day = date.fromisoformat(text)
                parsed = datetime.combine(day + timedelta(days=1 if end else 0), time())
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise WindowSyntaxError(
                f"cannot read {value!r} as a date or date-time (write 2025-12-20 or "
                "2025-12-20T18:00)"
            ) from exc
    else:
        raise WindowSyntaxError(f"{value!r} is not a date or date-time")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)
