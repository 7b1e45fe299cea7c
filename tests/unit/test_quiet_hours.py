"""Quiet hours with fixed clocks, across daylight-saving transitions and several zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.definitions import QuietHours
from services.common.quiet_hours import (
    NoCommonWindow,
    first_instant_at,
    is_quiet,
    next_opening,
    recipient_zones,
    zone_named,
)

HKI = ZoneInfo("Europe/Helsinki")
NYC = ZoneInfo("America/New_York")
NIGHT = QuietHours(start=time(20, 0), end=time(8, 0))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        (time(20, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
        (time(19, 59), False),
    ],
)
def test_window_crossing_midnight(local: time, quiet: bool) -> None:
    assert is_quiet(local, NIGHT) is quiet


def test_window_within_a_day_and_empty_window() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(13, 0))
    assert is_quiet(time(12, 30), lunch)
    assert not is_quiet(time(13, 0), lunch)
    assert not is_quiet(time(3, 0), QuietHours(start=time(8, 0), end=time(8, 0)))


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # Helsinki winter (UTC+2): noon is open; 21:00 waits for 08:00 next morning.
        (utc(2026, 11, 27, 10), HKI, None),
        (utc(2026, 11, 27, 19), HKI, utc(2026, 11, 28, 6)),
        (utc(2026, 11, 27, 3), HKI, utc(2026, 11, 27, 6)),
        (utc(2026, 11, 27, 5, 59), HKI, utc(2026, 11, 27, 6)),
        (utc(2026, 11, 27, 6), HKI, None),
        # Spring forward (last Sunday of March): 08:00 on 29 March is already UTC+3.
        (utc(2026, 3, 28, 20), HKI, utc(2026, 3, 29, 5)),
        # Fall back (last Sunday of October): 08:00 on 25 October is UTC+2 again.
        (utc(2026, 10, 24, 20), HKI, utc(2026, 10, 25, 6)),
        # New York: DST starts 8 March 2026, ends 1 November 2026.
        (utc(2026, 3, 8, 3), NYC, utc(2026, 3, 8, 12)),
        (utc(2026, 11, 1, 3), NYC, utc(2026, 11, 1, 13)),
        (utc(2026, 7, 1, 23, 59), NYC, None),  # 19:59 EDT is still open
        (utc(2026, 7, 2, 0), NYC, utc(2026, 7, 2, 12)),  # 20:00 EDT is not
    ],
)
def test_next_opening_fixed_clocks(
    now: datetime, zone: ZoneInfo, expected: datetime | None
) -> None:
    assert next_opening(now, (zone,), NIGHT) == expected


def test_window_ending_in_the_skipped_hour_opens_at_the_jump() -> None:
    # 29 March 2026 Helsinki: 03:00 EET becomes 04:00 EEST, so 03:30 never happens.
    quiet = QuietHours(start=time(22, 0), end=time(3, 30))
    assert next_opening(utc(2026, 3, 28, 21), (HKI,), quiet) == utc(2026, 3, 29, 1)
    assert first_instant_at(datetime(2026, 3, 29).date(), time(3, 30), HKI) == utc(2026, 3, 29, 1)


def test_window_ending_in_the_repeated_hour_opens_at_its_first_occurrence() -> None:
    # 25 October 2026 Helsinki: 03:30 happens at 00:30Z (EEST) and again at 01:30Z (EET).
    quiet = QuietHours(start=time(22, 0), end=time(3, 30))
    assert next_opening(utc(2026, 10, 24, 20), (HKI,), quiet) == utc(2026, 10, 25, 0, 30)


def test_several_zones_wait_for_the_last_to_open() -> None:
    boise, la = ZoneInfo("America/Boise"), ZoneInfo("America/Los_Angeles")
    # 08:30 in Boise but 07:30 in Los Angeles: wait for Los Angeles' 08:00.
    assert next_opening(utc(2026, 6, 15, 14, 30), (boise, la), NIGHT) == utc(2026, 6, 15, 15)
    # 20:30 in Boise, 19:30 in LA: Boise opens at 14:00Z, when LA is still quiet until 15:00Z.
    assert next_opening(utc(2026, 6, 15, 2, 30), (boise, la), NIGHT) == utc(2026, 6, 15, 15)
    assert next_opening(utc(2026, 6, 15, 16), (boise, la), NIGHT) is None


def test_zones_with_no_common_window() -> None:
    short_day = QuietHours(start=time(18, 0), end=time(10, 0))  # open 10:00-18:00
    zones = (ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo"))
    with pytest.raises(NoCommonWindow):
        next_opening(utc(2026, 1, 15, 12), zones, short_day)


def test_disabled_quiet_hours_never_defer() -> None:
    assert next_opening(utc(2026, 11, 27, 22), (HKI,), None) is None


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Europe/Helsinki", "Europe/Helsinki"),
        ("europe_slash_helsinki", "Europe/Helsinki"),
        ("america_slash_new_york", "America/New_York"),
        ("america_slash_argentina_slash_buenos_aires", "America/Argentina/Buenos_Aires"),
        (" America/New_York ", "America/New_York"),
        ("Mars/Olympus_Mons", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_hubspot_time_zone_forms(value: object, name: str | None) -> None:
    zone = zone_named(value)
    assert (zone.key if zone else None) == name


def test_zone_choice_contact_then_number_then_account() -> None:
    number = ("America/Boise", "America/Los_Angeles")
    assert [z.key for z in recipient_zones("europe_slash_helsinki", number, "UTC")] == [
        "Europe/Helsinki"
    ]
    assert [z.key for z in recipient_zones(None, number, "UTC")] == list(number)
    assert [z.key for z in recipient_zones("bogus", ("Etc/Unknown",), "Europe/Oslo")] == [
        "Europe/Oslo"
    ]
    assert [z.key for z in recipient_zones(None, (), "Europe/Oslo")] == ["Europe/Oslo"]


ZONES = [
    "Europe/Helsinki",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Boise",
    "Europe/London",
]


@settings(max_examples=150, deadline=None)
@given(
    now=st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    start=st.integers(0, 23),
    length=st.integers(1, 14),
)
def test_opening_is_open_everywhere_and_nothing_earlier_is(
    now: datetime, names: list[str], start: int, length: int
) -> None:
    quiet = QuietHours(start=time(start), end=time((start + length) % 24))
    zones = tuple(ZoneInfo(n) for n in names)
    try:
        opening = next_opening(now, zones, quiet)
    except NoCommonWindow:
        return
    if opening is None:
        assert not any(is_quiet(now.astimezone(z).time(), quiet) for z in zones)
        return
    assert opening > now
    assert not any(is_quiet(opening.astimezone(z).time(), quiet) for z in zones)
    step = (opening - now) / 40
    for i in range(40):
        moment = now + step * i
        assert any(is_quiet(moment.astimezone(z).time(), quiet) for z in zones), moment
    assert opening - now <= timedelta(days=3)
