"""Phone resolution: mobilephone, else phone; national formats per region; E.164 out."""

from __future__ import annotations

import pytest

from services.common.phones import normalize, raw_recipient, resolve_recipient


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ({"mobilephone": "+358401234567", "phone": "+358912345678"}, "+358401234567"),
        ({"mobilephone": None, "phone": "+358912345678"}, "+358912345678"),
        ({"mobilephone": "", "phone": "+358912345678"}, "+358912345678"),
        ({"mobilephone": "   ", "phone": "+358912345678"}, "+358912345678"),
        ({"phone": "+358912345678"}, "+358912345678"),
        ({"mobilephone": None, "phone": None}, None),
        ({}, None),
    ],
)
def test_mobile_then_phone(contact: dict[str, object], expected: str | None) -> None:
    assert raw_recipient(contact) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("040 123 4567", "FI", "+358401234567"),
        ("0401234567", "FI", "+358401234567"),
        ("+358 40 123 4567", "US", "+358401234567"),  # an international number ignores region
        ("(212) 555-0123", "US", "+12125550123"),
        ("212.555.0123", "US", "+12125550123"),
        ("07911 123456", "GB", "+447911123456"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("040 123 4567", "US", None),  # not a US number
        ("garbage", "FI", None),
        ("123", "FI", None),
        ("+999 123 456 789", "FI", None),
        ("", "FI", None),
    ],
)
def test_normalize_per_default_region(raw: str, region: str, e164: str | None) -> None:
    assert normalize(raw, region) == e164


def test_numbers_as_json_numbers_are_read_too() -> None:
    assert normalize(358401234567, None) is None  # no + and no region: unknown country
    assert normalize(2125550123, "US") == "+12125550123"


def test_resolution_reports_missing_invalid_and_zones() -> None:
    missing = resolve_recipient({"mobilephone": None}, "FI")
    assert missing.missing
    assert missing.e164 is None
    invalid = resolve_recipient({"mobilephone": "not a number"}, "FI")
    assert not invalid.missing
    assert invalid.e164 is None
    valid = resolve_recipient({"mobilephone": "040 123 4567"}, "FI")
    assert valid.e164 == "+358401234567"
    assert "Europe/Helsinki" in valid.zones
    # An invalid mobile does not fall back to phone: mobilephone has a value (HubSpot).
    assert resolve_recipient({"mobilephone": "xx", "phone": "+358912345678"}, "FI").e164 is None
