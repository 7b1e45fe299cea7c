"""The recipient of an SMS: ``mobilephone``, else ``phone``, normalised to E.164."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, timezone

from schemas.contacts import PropertyValue

UNKNOWN_ZONE = timezone.UNKNOWN_TIMEZONE  # "Etc/Unknown"


@dataclass(frozen=True)
class Recipient:
    """What phone resolution found: ``e164`` when valid, else the reason it is not."""

    raw: str | None
    e164: str | None
    zones: tuple[str, ...] = ()

    @property
    def missing(self) -> bool:
        return self.raw is None


def has_value(value: PropertyValue) -> bool:
    return value is not None and str(value).strip() != ""


def raw_recipient(contact: Mapping[str, PropertyValue]) -> str | None:
    """``mobilephone`` when it has a value, else ``phone``, else None (HubSpot's order)."""
    for name in ("mobilephone", "phone"):
        value = contact.get(name)
        if has_value(value):
            return str(value).strip()
    return None


def resolve_recipient(contact: Mapping[str, PropertyValue], default_region: str) -> Recipient:
    raw = raw_recipient(contact)
    if raw is None:
        return Recipient(raw=None, e164=None)
    e164, zones = parse_number(raw, default_region)
    return Recipient(raw=raw, e164=e164, zones=zones)


def normalize(raw: PropertyValue, default_region: str | None) -> str | None:
    """E.164 for a valid number (national formats read in ``default_region``), else None."""
    if not has_value(raw):
        return None
    return parse_number(str(raw).strip(), default_region)[0]


@lru_cache(maxsize=65536)
def parse_number(raw: str, default_region: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(E.164 or None, candidate IANA zones). Cached: contacts are messaged repeatedly."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None, ()
    if not phonenumbers.is_valid_number(number):
        return None, ()
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164, tuple(timezone.time_zones_for_number(number))
