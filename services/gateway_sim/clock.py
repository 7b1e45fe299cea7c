"""Timestamps in the formats the APIs use."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-11-27T10:00:00.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_from_timestamp(timestamp: float) -> str:
    return rfc3339(datetime.fromtimestamp(timestamp, UTC))


def rfc2822(moment: datetime) -> str:
    """``Fri, 27 Nov 2026 10:00:00 +0000``, as in Twilio's ``date_created``."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))
