"""When a ``delay`` action ends. Pure: ``now`` and the contact come in, a due time goes out.

* a fixed delay ends ``days/hours/minutes/seconds`` after it starts;
* ``until_property`` ends at the moment held by that contact property: an ISO datetime
  (naive = the account's time zone), an ISO date (midnight in the account's time zone) or
  epoch milliseconds (HubSpot's form); a fixed part, if any, is added to that moment;
* a property with no readable moment, or a moment already past, does not wait;
* ``until: {weekday, time}`` ends at the next such instant in the recipient's zones (see
  ``local_time``; the account's zone when none are given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas.contacts import PropertyValue
from schemas.definitions import Delay

from .local_time import delay_until
from .values import as_moment, zone


@dataclass(frozen=True, slots=True)
class DelayEnd:
    due: float | None  # epoch seconds; None: do not wait
    note: str | None = None  # why it does not wait, when it does not


def delay_end(
    delay: Delay,
    properties: Mapping[str, PropertyValue],
    time_zone: str,
    now: float,
    zones: Sequence[ZoneInfo] = (),
) -> DelayEnd:
    if delay.until is not None:
        fallback = (ZoneInfo(time_zone),)
        ends = delay_until(datetime.fromtimestamp(now, UTC), zones or fallback, delay.until)
        return DelayEnd(ends.timestamp())
    if delay.until_property is None:
        return DelayEnd(now + delay.total_seconds)
    moment = as_moment(properties.get(delay.until_property), zone(time_zone))
    if moment is None:
        return DelayEnd(None, f"{delay.until_property} holds no date")
    due = moment.timestamp() + delay.total_seconds
    if due <= now:
        return DelayEnd(None, f"{delay.until_property} is in the past")
    return DelayEnd(due)
