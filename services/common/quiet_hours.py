"""Quiet hours in the recipient's local time: is now allowed, and if not, from when.

The recipient's zone is the contact's ``hs_timezone`` (IANA, or HubSpot's
``europe_slash_helsinki`` form), else the zones of the phone number. When the number
allows several zones, the SMS goes out only at an instant that is outside quiet hours in
all of them. Pure functions of ``now``: no clock is read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from schemas.definitions import QuietHours

UNKNOWN_ZONE = "Etc/Unknown"
# Number zones spread over more than a day's open hours have no common window.
SEARCH_LIMIT = timedelta(days=3)


class NoCommonWindow(ValueError):
    """The candidate zones are never all outside quiet hours at the same instant."""


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for name in available_timezones():
        names[name.lower()] = name
        names[name.lower().replace("/", "_slash_")] = name
    return names


def zone_named(value: object) -> ZoneInfo | None:
    """The zone an ``hs_timezone`` value names, or None when it names none."""
    if not isinstance(value, str) or not value.strip():
        return None
    name = _zone_names().get(value.strip().lower())
    return ZoneInfo(name) if name else None


def recipient_zones(
    hs_timezone: object, number_zones: Iterable[str], account_zone: str
) -> tuple[ZoneInfo, ...]:
    """Contact zone, else the number's known zones, else the account's zone."""
    own = zone_named(hs_timezone)
    if own is not None:
        return (own,)
    zones = tuple(
        ZoneInfo(_zone_names()[n.lower()])
        for n in number_zones
        if n != UNKNOWN_ZONE and n.lower() in _zone_names()
    )
    return zones or (ZoneInfo(account_zone),)


def is_quiet(local: time, quiet: QuietHours) -> bool:
    start, end = quiet.start, quiet.end
    if start == end:
        return False  # an empty window
    if start < end:
        return start <= local < end
    return local >= start or local < end  # crosses midnight


def next_opening(
    now: datetime, zones: Sequence[ZoneInfo], quiet: QuietHours | None
) -> datetime | None:
    """None when sending is allowed at ``now`` in every zone; else the earliest instant
    (UTC) at which it is allowed in all of them. Raises NoCommonWindow if there is none."""
    if quiet is None or quiet.start == quiet.end:
        return None
    moment = now.astimezone(UTC)
    while moment - now <= SEARCH_LIMIT:
        closed = [z for z in zones if is_quiet(_wall(moment, z).time(), quiet)]
        if not closed:
            return None if moment == now else moment
        # Each closed zone stays closed until its own opening; none can open earlier.
        moment = max(_opening_after(moment, zone, quiet) for zone in closed)
    raise NoCommonWindow(f"no instant outside quiet hours in all of {[str(z) for z in zones]}")


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _opening_after(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The end of the quiet window that ``moment`` (in quiet hours in ``zone``) lies in."""
    local = _wall(moment, zone)
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # before midnight: the window ends tomorrow
    return first_instant_at(day, quiet.end, zone)


def first_instant_at(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock in ``zone`` shows ``at`` or later on
    ``day``: the earlier of two in a repeated hour, the transition itself in a skipped one."""
    wall = datetime.combine(day, at)
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(earlier, zone) == wall:
        return earlier
    # ``wall`` falls in a gap (clocks jumped forward over it): find the jump, to the second.
    low = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(earlier.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), zone) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
