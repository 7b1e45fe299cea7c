"""Sending windows and day/time delays in the recipient's local time. Pure: ``now`` comes in.

The recipient's zones follow the quiet-hours rules (``services.common.quiet_hours``):
the contact's ``hs_timezone``, else the zones of its phone number, else the account's
zone. When a number spans several zones, a window counts as open only at instants open in
all of them, and "Monday 09:00" is the first instant at which it is Monday 09:00 or later
in every one of them. Wall-clock times are read through ``zoneinfo``, so they hold across
daylight-saving changes (a skipped time is read as the moment the clocks jump).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.contacts import PropertyValue
from schemas.definitions import DelayUntil, SendingWindow
from services.common.phones import parse_number, raw_recipient
from services.common.quiet_hours import first_instant_at, recipient_zones

WEEK = timedelta(days=7)
# The zones of one number are less than a day apart; any wider set has no common window.
SPAN = timedelta(hours=30)


class NoCommonWindow(ValueError):
    """The zones are never all inside the window at the same instant."""


def zones_of(
    contact: Mapping[str, PropertyValue], default_region: str, account_zone: str
) -> tuple[ZoneInfo, ...]:
    raw = raw_recipient(contact)
    number_zones = parse_number(raw, default_region)[1] if raw is not None else ()
    return recipient_zones(contact.get("hs_timezone"), number_zones, account_zone)


# ---------------------------------------------------------------- sending windows


def is_open(moment: datetime, zone: ZoneInfo, window: SendingWindow) -> bool:
    local = moment.astimezone(zone)
    days = {day.number for day in window.days}
    return local.weekday() in days and window.start <= local.time() < window.end


def window_opening(
    now: datetime, zones: Sequence[ZoneInfo], window: SendingWindow
) -> datetime | None:
    """None when the window is open at ``now`` in every zone; else the earliest instant
    (UTC) at which it is open in all of them. Raises NoCommonWindow if there is none."""
    moment = now.astimezone(UTC)
    while moment - now <= WEEK + SPAN:
        closed = [zone for zone in zones if not is_open(moment, zone, window)]
        if not closed:
            return None if moment == now else moment
        # Each closed zone stays closed until its own next opening; none opens earlier.
        moment = max(_opening_after(moment, zone, window) for zone in closed)
    raise NoCommonWindow(f"no instant inside the window in all of {[str(z) for z in zones]}")


def _opening_after(moment: datetime, zone: ZoneInfo, window: SendingWindow) -> datetime:
    """The next instant at or after ``moment`` at which the window is open in ``zone``."""
    today = moment.astimezone(zone).date()
    days = {day.number for day in window.days}
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        if moment < first_instant_at(day, window.end, zone):
            return max(moment, first_instant_at(day, window.start, zone))
    raise AssertionError("a window with at least one day opens within a week")  # pragma: no cover


# ---------------------------------------------------------------- delay until a day and time


def next_local(moment: datetime, zone: ZoneInfo, until: DelayUntil) -> datetime:
    """The first instant at or after ``moment`` at which the wall clock in ``zone`` shows
    ``until.time`` (on ``until.weekday``, when given)."""
    today = moment.astimezone(zone).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if until.weekday is not None and day.weekday() != until.weekday.number:
            continue
        instant = first_instant_at(day, until.time, zone)
        if instant >= moment:
            return instant
    raise AssertionError("a weekday recurs within 8 days")  # pragma: no cover


def delay_until(now: datetime, zones: Sequence[ZoneInfo], until: DelayUntil) -> datetime:
    """When a ``delay until`` ends: the day on which the soonest zone reaches the time next,
    at the instant the last of the zones reaches that time on that (calendar) day."""
    first = min(zones, key=lambda zone: next_local(now, zone, until))
    day = next_local(now, first, until).astimezone(first).date()
    return max(first_instant_at(day, until.time, other) for other in zones)
