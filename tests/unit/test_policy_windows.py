"""Deployment windows: time zones, DST edges, deny over allow, next_open -- on a fake clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gitswarm.errors import ConfigError
from gitswarm.policy import parse_settings, window_state
from gitswarm.policy.cron import Cron
from gitswarm.policy.windows import WindowSettings


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def state(now: datetime, **windows: Any) -> Any:
    settings = parse_settings({"deployment_windows": {"mode": "enforce", **windows}})
    return window_state(settings, now)


OFFICE = {"timezone": "Europe/Berlin", "allow": ["Mon-Fri 09:00-16:00"]}


def test_inside_an_allow_window_is_open_and_says_when_it_closes() -> None:
    # Monday 2025-06-02 09:30 in Berlin (CEST, UTC+2)
    s = state(utc(2025, 6, 2, 7, 30), **OFFICE)
    assert s.open
    assert "Mon-Fri 09:00-16:00 Europe/Berlin" in s.reason
    assert s.next_open is None
    assert s.closes_at == utc(2025, 6, 2, 14, 0)


def test_the_end_of_a_window_is_exclusive_and_next_open_is_the_next_morning() -> None:
    s = state(utc(2025, 6, 2, 14, 0), **OFFICE)  # 16:00 Berlin
    assert not s.open
    assert "outside every allow window" in s.reason
    assert s.next_open == utc(2025, 6, 3, 7, 0)  # Tuesday 09:00 CEST


def test_friday_evening_opens_on_monday_in_the_new_dst_offset() -> None:
    # Friday 2025-03-28 16:30 CET; clocks go forward on Sunday 30 March.
    s = state(utc(2025, 3, 28, 15, 30), **OFFICE)
    assert not s.open
    assert s.next_open == utc(2025, 3, 31, 7, 0)  # Monday 09:00 CEST = 07:00 UTC, not 08:00


def test_same_wall_clock_window_is_an_hour_earlier_in_utc_in_summer() -> None:
    winter = state(utc(2025, 1, 6, 7, 30), **OFFICE)  # 08:30 CET: before the window
    summer = state(utc(2025, 7, 7, 7, 30), **OFFICE)  # 09:30 CEST: inside
    assert not winter.open
    assert summer.open


def test_a_window_across_the_spring_forward_night_is_an_hour_shorter() -> None:
    spec = {"timezone": "Europe/Berlin", "allow": ["Sun 01:00-04:00"]}
    s = state(utc(2025, 3, 30, 0, 30), **spec)  # 01:30 CET
    assert s.open
    assert s.closes_at == utc(2025, 3, 30, 2, 0)  # 04:00 CEST: two hours of real time


def test_a_window_edge_in_the_skipped_hour_moves_forward() -> None:
    spec = {"timezone": "Europe/Berlin", "allow": ["Sun 02:30-05:00"]}
    s = state(utc(2025, 3, 30, 1, 15), **spec)  # 03:15 CEST; 02:30 never happened
    assert not s.open
    assert s.next_open == utc(2025, 3, 30, 1, 30)  # 03:30 CEST


def test_a_window_across_the_fall_back_night_covers_the_repeated_hour() -> None:
    spec = {"timezone": "Europe/Berlin", "allow": ["Sun 02:30-03:30"]}
    # 2025-10-26: 02:30 CEST (00:30 UTC) ... 03:30 CET (02:30 UTC), two real hours
    assert state(utc(2025, 10, 26, 0, 45), **spec).open
    assert state(utc(2025, 10, 26, 1, 45), **spec).open  # 02:45 CET, the second pass
    assert not state(utc(2025, 10, 26, 2, 30), **spec).open


def test_deny_overrides_allow() -> None:
    spec = {
        "timezone": "Europe/Berlin",
        "allow": ["daily 00:00-24:00"],
        "deny": ["Fri 16:00-Mon 08:00"],
    }
    s = state(utc(2025, 6, 7, 10, 0), **spec)  # Saturday
    assert not s.open
    assert "inside deny window Fri 16:00-Mon 08:00 Europe/Berlin" in s.reason
    assert s.next_open == utc(2025, 6, 9, 6, 0)  # Monday 08:00 CEST
    assert state(utc(2025, 6, 6, 13, 59), **spec).open  # Friday 15:59 CEST


def test_deny_only_is_open_outside_the_deny_windows() -> None:
    s = state(utc(2025, 6, 4, 10, 0), deny=["Fri 16:00-Mon 08:00 Europe/Berlin"])
    assert s.open
    assert s.closes_at == utc(2025, 6, 6, 14, 0)


def test_each_window_keeps_its_own_time_zone() -> None:
    spec = {"allow": ["Mon-Fri 09:00-17:00 America/New_York"]}
    # 2025-06-02 14:00 UTC is 10:00 in New York and 23:00 in Tokyo
    assert state(utc(2025, 6, 2, 14, 0), **spec).open
    tokyo = state(utc(2025, 6, 2, 14, 0), allow=["Mon-Fri 09:00-17:00 Asia/Tokyo"])
    assert not tokyo.open
    assert tokyo.next_open == utc(2025, 6, 3, 0, 0)  # Tuesday 09:00 JST


def test_the_block_time_zone_applies_to_windows_without_one() -> None:
    s = state(utc(2025, 6, 2, 7, 30), timezone="Asia/Tokyo", allow=["Mon 09:00-17:00"])
    assert s.open  # 16:30 in Tokyo


def test_a_window_past_midnight_runs_into_the_next_day() -> None:
    spec = {"allow": ["Mon 22:00-02:00 UTC"]}
    assert state(utc(2025, 6, 3, 1, 0), **spec).open  # Tuesday 01:00
    assert not state(utc(2025, 6, 3, 2, 0), **spec).open


def test_cron_windows_open_for_their_duration() -> None:
    spec = {
        "timezone": "Europe/Berlin",
        "allow": [{"schedule": "0 22 * * 1-5", "duration": "2h", "name": "night"}],
    }
    assert state(utc(2025, 6, 3, 21, 30), **spec).open  # Tuesday 23:30 CEST
    s = state(utc(2025, 6, 3, 22, 0), **spec)  # Wednesday 00:00: closed again
    assert not s.open
    assert "'night'" in s.reason
    assert s.next_open == utc(2025, 6, 4, 20, 0)
    weekend = state(utc(2025, 6, 7, 20, 30), **spec)  # Saturday 22:30
    assert not weekend.open
    assert weekend.next_open == utc(2025, 6, 9, 20, 0)  # Monday 22:00 CEST


def test_a_freeze_by_dates_includes_its_last_day() -> None:
    spec = {
        "allow": ["Mon-Fri 09:00-17:00 Europe/Berlin"],
        "deny": [{"name": "year-end freeze", "from": "2025-12-20", "until": "2026-01-06"}],
    }
    s = state(utc(2025, 12, 22, 10, 0), timezone="Europe/Berlin", **spec)
    assert not s.open
    assert "'year-end freeze'" in s.reason
    assert s.next_open == utc(2026, 1, 7, 8, 0)  # Wednesday 09:00 CET, after the 6th


def test_yaml_dates_are_accepted() -> None:
    spec = {"deny": [{"from": date(2025, 12, 20), "until": datetime(2025, 12, 21, 12, 0)}]}
    assert not state(utc(2025, 12, 21, 11, 59), **spec).open
    assert state(utc(2025, 12, 21, 12, 0), **spec).open


def test_no_opening_within_a_year_gives_no_next_open() -> None:
    s = state(utc(2025, 6, 2, 10, 0), deny=[{"from": "2025-01-01", "until": "2030-01-01"}])
    assert not s.open
    assert s.next_open is None


def test_no_windows_is_always_open() -> None:
    assert window_state(WindowSettings(), utc(2025, 6, 2)).open
    assert window_state(parse_settings({}), utc(2025, 6, 2)).reason == "deployment windows are off"


def test_the_clock_must_have_a_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        state(datetime(2025, 6, 2, 10, 0), **OFFICE)


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ("Mon-Thu 9-16", "cannot read window"),
        ("Mox 09:00-16:00", "unknown day"),
        ("Mon 09:00-16:00 Mars/Olympus", "unknown time zone"),
        ("Mon 09:00-09:00", "empty"),
        ({"schedule": "0 22 * *", "duration": "1h"}, "5 fields"),
        ({"schedule": "0 25 * * *", "duration": "1h"}, "not in 0-23"),
        ({"schedule": "0 22 * * *"}, "duration"),
        ({"schedule": "0 22 * * *", "duration": "forever"}, "cannot read duration"),
        ({"from": "2026-01-06", "until": "2025-12-20"}, "empty"),
        ({"from": "soon", "until": "2025-12-20"}, "cannot read"),
        ({"when": "Mon 09:00-16:00", "schedule": "* * * * *"}, "a window is one of"),
        ({"start": "09:00"}, "unknown window keys"),
    ],
)
def test_bad_windows_are_config_errors(window: object, error: str) -> None:
    with pytest.raises(ConfigError, match=error) as info:
        parse_settings({"deployment_windows": {"mode": "enforce", "allow": [window]}}, env="prod")
    assert "environments.prod.policies.deployment_windows.allow.0" in str(info.value)
    assert info.value.problems[0].file == "gitswarm.yml"


def test_cron_expressions() -> None:
    cron = Cron.parse("*/15 9-17 * jan-mar mon-fri")
    assert cron.minutes == frozenset({0, 15, 30, 45})
    assert cron.hours == frozenset(range(9, 18))
    assert cron.months == frozenset({1, 2, 3})
    assert cron.weekdays == frozenset({1, 2, 3, 4, 5})
    assert Cron.parse("0 0 * * 7").weekdays == frozenset({0})  # 7 is Sunday too
    # both day fields restricted: either matches (the 1st, or any Monday)
    both = Cron.parse("0 0 1 * mon")
    assert both.day_matches(date(2025, 6, 1))  # a Sunday, the 1st
    assert both.day_matches(date(2025, 6, 2))  # a Monday
    assert not both.day_matches(date(2025, 6, 3))
    start = datetime(2025, 1, 6, 8, 50)  # a Monday in January
    found = list(cron.matches(start, start + timedelta(hours=1)))
    assert found == [datetime(2025, 1, 6, 9, m) for m in (0, 15, 30, 45)]


# --- cron by cronsim: Vixie's day rule, its extensions, DST, messages ---------------------


def test_a_day_field_starting_with_a_star_ands_the_other_as_in_vixie_cron() -> None:
    # Vixie cron: day-of-month and day-of-week are OR'ed only when neither starts with '*'
    odd_mondays = Cron.parse("0 0 */2 * mon")
    assert odd_mondays.day_matches(date(2025, 6, 9))  # Monday the 9th
    assert not odd_mondays.day_matches(date(2025, 6, 2))  # Monday the 2nd: even
    assert not odd_mondays.day_matches(date(2025, 6, 3))  # the 3rd: not a Monday
    either = Cron.parse("0 0 1-7 * mon")
    assert either.day_matches(date(2025, 6, 3))  # in 1-7
    assert either.day_matches(date(2025, 6, 16))  # a Monday
    assert not either.day_matches(date(2025, 6, 17))


def test_last_and_nth_weekdays_of_the_month() -> None:
    last_friday = Cron.parse("0 18 * * 5L")
    assert last_friday.day_matches(date(2025, 6, 27))
    assert not last_friday.day_matches(date(2025, 6, 20))
    first_monday = Cron.parse("0 9 * * 1#1")
    assert first_monday.day_matches(date(2025, 6, 2))
    assert not first_monday.day_matches(date(2025, 6, 9))
    spec = {"allow": [{"schedule": "0 18 * * 5L", "duration": "4h"}]}
    s = state(utc(2025, 6, 20, 19, 0), **spec)  # a Friday, not the last one
    assert not s.open
    assert s.next_open == utc(2025, 6, 27, 18, 0)


def test_a_cron_start_in_the_skipped_hour_moves_forward_like_a_weekly_edge() -> None:
    spec = {
        "timezone": "Europe/Berlin",
        "allow": [{"schedule": "30 2 * * *", "duration": "1h"}],
    }
    # 2025-03-30: 02:30 never happens in Berlin; the window opens at 03:30 CEST instead
    s = state(utc(2025, 3, 30, 0, 0), **spec)
    assert not s.open
    assert s.next_open == utc(2025, 3, 30, 1, 30)
    assert state(utc(2025, 3, 30, 1, 30), **spec).closes_at == utc(2025, 3, 30, 2, 30)


def test_a_cron_start_in_the_repeated_hour_is_its_first_occurrence() -> None:
    spec = {
        "timezone": "Europe/Berlin",
        "allow": [{"schedule": "30 2 * * *", "duration": "30m"}],
    }
    # 2025-10-26: 02:30 happens twice (00:30 UTC in CEST, 01:30 UTC in CET); it opens once
    assert state(utc(2025, 10, 26, 0, 45), **spec).open
    second = state(utc(2025, 10, 26, 1, 40), **spec)
    assert not second.open
    assert second.next_open == utc(2025, 10, 27, 1, 30)  # Monday 02:30 CET


def test_cron_matches_are_the_wall_clock_minutes_in_the_range() -> None:
    cron = Cron.parse("15,45 23 * * *")
    start = datetime(2025, 6, 1, 23, 15, 30)  # after 23:15: the next is 23:45
    found = list(cron.matches(start, datetime(2025, 6, 3, 0, 0)))
    assert found == [
        datetime(2025, 6, 1, 23, 45),
        datetime(2025, 6, 2, 23, 15),
        datetime(2025, 6, 2, 23, 45),
    ]
    assert list(cron.matches(datetime(2025, 6, 2, 23, 15), datetime(2025, 6, 2, 23, 15))) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 0 * * 8", "cron schedule '0 0 * * 8': '8' is not in 0-7"),
        ("*/0 * * * *", "cron schedule '*/0 * * * *': bad step in '*/0'"),
        ("0 0 * 5-2 *", "cron schedule '0 0 * 5-2 *': range '5-2' runs backwards"),
        ("0 0 * jun-feb *", "cron schedule '0 0 * jun-feb *': range 'jun-feb' runs backwards"),
        ("0 9-25 * * *", "cron schedule '0 9-25 * * *': '25' is not in 0-23"),
        (
            "0 0 * * funday",
            "cron schedule '0 0 * * funday': 'funday' is not a day of week: write a number "
            "in 0-7 or a name (sun..sat), *, a list (1,3), a range (1-5) or a step (*/15)",
        ),
        (
            "0 0 31 2 *",
            "cron schedule '0 0 31 2 *' never matches: its day of month does not occur in its "
            "months",
        ),
        (
            "0 0 0 * * *",
            "cron schedule '0 0 0 * * *' needs 5 fields: minute hour day month weekday",
        ),
    ],
)
def test_a_bad_cron_schedule_says_which_part_is_wrong(schedule: str, message: str) -> None:
    window = {"schedule": schedule, "duration": "1h"}
    with pytest.raises(ConfigError) as info:
        parse_settings({"deployment_windows": {"mode": "enforce", "allow": [window]}}, env="prod")
    [problem] = info.value.problems
    assert problem.message == (
        f"environments.prod.policies.deployment_windows.allow.0.schedule: {message}"
    )
    assert problem.file == "gitswarm.yml"
    assert problem.rule == "deployment_windows"
