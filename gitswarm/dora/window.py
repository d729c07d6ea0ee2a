"""The window a DORA report or an export covers, as people write it: ``30d``, ``12h``,
``2w``, ``90m``, ``45s`` (that long ago), or an ISO 8601 date or time (UTC unless it says
otherwise). Pure; the CLI and the API turn its ValueError into a usage error."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
HOW = "a duration such as 30d, 12h, 2w, 90m or 45s, or an ISO date such as 2026-11-01"


def parse_duration(text: str, what: str = "a duration") -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{what} must be like 30d, 12h, 2w, 90m or 45s, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_since(text: str, now: datetime) -> datetime:
    """The moment ``text`` names: ``now`` minus a duration, or an ISO date/time."""
    text = text.strip()
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since must be {HOW}, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment >= now:
        raise ValueError(f"--since {text} is not in the past")
    return moment


def parse_until(text: str, now: datetime, since: datetime) -> datetime:
    """The end ``text`` names, as ``parse_since`` reads it (``7d``: a week ago), after
    ``since`` and not after ``now``: a past window, whose report no longer changes."""
    text = text.strip()
    if _DURATION.match(text):
        moment = now - parse_duration(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"--until must be {HOW}, not {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    if moment > now:
        raise ValueError(f"--until {text} is in the future")
    if moment <= since:
        raise ValueError(f"--until {text} is not after --since ({since.isoformat()})")
    return moment
