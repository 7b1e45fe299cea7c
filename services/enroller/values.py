"""Reading contact property values as text, numbers, booleans and moments in time.

Pure: shared by the criteria (comparisons) and the delays (``until_property``).
HubSpot stores dates as ISO strings or epoch milliseconds; both are accepted.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.contacts import PropertyValue

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_EPOCH_DIGITS = re.compile(r"^-?\d{9,}$")  # epoch ms are long; short digit runs are numbers


def is_blank(value: PropertyValue) -> bool:
    """HubSpot treats a missing property and an empty string alike: no value."""
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: PropertyValue) -> str:
    """Case-insensitive comparison form; booleans read as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def as_number(value: PropertyValue) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(value.strip().replace(",", "")) if value.strip() else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def as_bool(value: PropertyValue) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    return None


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """An IANA zone (HubSpot's ``europe_slash_helsinki`` form too); unknown names read as UTC."""
    try:
        return ZoneInfo(name.replace("_slash_", "/"))
    except (ZoneInfoNotFoundError, ValueError):
        try:
            return ZoneInfo(name.replace("_slash_", "/").title())
        except (ZoneInfoNotFoundError, ValueError):
            return UTC


def looks_like_moment(value: PropertyValue) -> bool:
    """True for ISO dates/datetimes (strings); numbers are numbers unless compared to a date."""
    return isinstance(value, str) and bool(
        _ISO_DATE.match(value.strip()) or _ISO_DATETIME.match(value.strip())
    )


def as_moment(value: PropertyValue, tz: tzinfo = UTC) -> datetime | None:
    """An aware datetime from an ISO date (midnight in ``tz``), ISO datetime (naive = ``tz``)
    or epoch milliseconds (number or digit string); ``None`` when it is none of those."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch_ms(value)
    text = value.strip()
    if _EPOCH_DIGITS.match(text):
        return _from_epoch_ms(int(text))
    if _ISO_DATE.match(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz)
        except ValueError:
            return None
    if _ISO_DATETIME.match(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    return None


def _from_epoch_ms(value: float) -> datetime | None:
    if not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
