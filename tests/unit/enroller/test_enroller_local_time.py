"""Sending windows and ``delay until`` in recipient time: pure functions, DST included."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.definitions import DelayUntil, SendingWindow
from services.enroller.local_time import (
    NoCommonWindow,
    delay_until,
    is_open,
    window_opening,
    zones_of,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
MONDAY_9 = DelayUntil.model_validate({"weekday": "mon", "time": "09:00"})
OFFICE = SendingWindow.model_validate(
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_delay_until_monday_0900_across_the_autumn_dst_change() -> None:
    # Friday 23 Oct 2026 12:00 in Helsinki (EEST, UTC+3); clocks go back on Sunday 25 Oct.
    ends = delay_until(utc(2026, 10, 23, 9, 0), (HELSINKI,), MONDAY_9)
    assert ends == utc(2026, 10, 26, 7, 0)  # 09:00 EET (UTC+2), not 06:00 UTC
    assert ends.astimezone(HELSINKI).strftime("%a %H:%M %Z") == "Mon 09:00 EET"


def test_delay_until_monday_0900_across_the_spring_dst_change() -> None:
    # Saturday 27 Mar 2027 in New York is already EDT (since 14 Mar); in Helsinki the change
    # is on Sunday 28 Mar.
    ends = delay_until(utc(2027, 3, 27, 12, 0), (HELSINKI,), MONDAY_9)
    assert ends == utc(2027, 3, 29, 6, 0)  # 09:00 EEST (UTC+3)
    ends = delay_until(utc(2027, 3, 12, 12, 0), (NEW_YORK,), MONDAY_9)
    assert ends == utc(2027, 3, 15, 13, 0)  # 09:00 EDT (UTC-4), the day after the change


def test_delay_until_on_the_day_itself() -> None:
    assert delay_until(utc(2026, 11, 30, 6, 59), (HELSINKI,), MONDAY_9) == utc(2026, 11, 30, 7)
    assert delay_until(utc(2026, 11, 30, 7, 0), (HELSINKI,), MONDAY_9) == utc(2026, 11, 30, 7)
    assert delay_until(utc(2026, 11, 30, 7, 1), (HELSINKI,), MONDAY_9) == utc(2026, 12, 7, 7)


def test_delay_until_a_time_of_any_day_and_a_time_the_clocks_skip() -> None:
    at_0300 = DelayUntil.model_validate({"time": "03:30"})
    # 03:30 does not exist in Helsinki on 29 Mar 2026 (03:00 -> 04:00): the jump itself.
    assert delay_until(utc(2026, 3, 28, 23, 0), (HELSINKI,), at_0300) == utc(2026, 3, 29, 1, 0)
    assert delay_until(utc(2026, 3, 29, 2, 0), (HELSINKI,), at_0300) == utc(2026, 3, 30, 0, 30)


def test_delay_until_with_several_zones_waits_until_it_is_that_time_in_all() -> None:
    zones = (NEW_YORK, CHICAGO, LOS_ANGELES)
    ends = delay_until(utc(2026, 11, 27, 12, 0), zones, MONDAY_9)
    assert ends == utc(2026, 11, 30, 17, 0)  # Monday 09:00 in Los Angeles
    # Monday 09:30 in New York but 07:30 in Chicago: this Monday, not next week's.
    ends = delay_until(utc(2026, 11, 30, 14, 30), zones, MONDAY_9)
    assert ends == utc(2026, 11, 30, 17, 0)


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2029, 1, 1)),
    zone=st.sampled_from([HELSINKI, NEW_YORK, ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")]),
    weekday=st.sampled_from(["mon", "wed", "sun", None]),
    hour=st.integers(0, 23),
)
def test_delay_until_is_the_next_such_wall_clock_time(
    now: datetime, zone: ZoneInfo, weekday: str | None, hour: int
) -> None:
    until = DelayUntil.model_validate({"weekday": weekday, "time": f"{hour:02d}:15"})
    start = now.replace(tzinfo=UTC)
    ends = delay_until(start, (zone,), until)
    assert start <= ends
    assert (ends - start).days <= 7
    local = ends.astimezone(zone)
    if weekday is not None:
        assert local.strftime("%a").lower() == weekday
    # The wall clock shows the time, unless the clocks skipped it that day.
    assert (local.hour, local.minute) == (hour, 15) or local.minute == 0


def test_a_send_due_at_2200_in_a_0900_to_1700_window_goes_at_0900() -> None:
    # Tuesday 22:00 in Helsinki -> Wednesday 09:00.
    assert window_opening(utc(2026, 12, 1, 20, 0), (HELSINKI,), OFFICE) == utc(2026, 12, 2, 7)
    # Friday 18:00 -> Monday 09:00; inside the window -> None (now).
    assert window_opening(utc(2026, 12, 4, 16, 0), (HELSINKI,), OFFICE) == utc(2026, 12, 7, 7)
    assert window_opening(utc(2026, 12, 2, 10, 0), (HELSINKI,), OFFICE) is None
    assert is_open(utc(2026, 12, 2, 14, 59), HELSINKI, OFFICE)
    assert not is_open(utc(2026, 12, 2, 15, 0), HELSINKI, OFFICE)  # 17:00: closed


def test_a_window_across_zones_opens_when_open_in_all() -> None:
    zones = (NEW_YORK, LOS_ANGELES)
    # Wednesday 08:00 in Los Angeles, 11:00 in New York: opens at 09:00 in Los Angeles.
    assert window_opening(utc(2026, 12, 2, 16, 0), zones, OFFICE) == utc(2026, 12, 2, 17)
    far = (HELSINKI, ZoneInfo("Pacific/Honolulu"))  # 12 h apart: no common hour of 09-17
    with pytest.raises(NoCommonWindow):
        window_opening(utc(2026, 12, 2, 16, 0), far, OFFICE)


def test_recipient_zones_follow_the_quiet_hours_rules() -> None:
    assert zones_of({"hs_timezone": "america_slash_new_york"}, "FI", "UTC") == (NEW_YORK,)
    assert HELSINKI in zones_of({"mobilephone": "040 123 4567"}, "FI", "UTC")
    assert LOS_ANGELES in zones_of({"mobilephone": "+1 213 555 0100"}, "FI", "UTC")
    assert zones_of({}, "FI", "Europe/Helsinki") == (HELSINKI,)
