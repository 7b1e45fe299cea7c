from __future__ import annotations

import pytest

from services.control.emit import build_change, main, parse_property


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("firstname=Aino", ("firstname", "Aino")),
        ("phone=null", ("phone", None)),
        ("note=a=b", ("note", "a=b")),
        ("age:=42", ("age", 42)),
        ("vip:=true", ("vip", True)),
        ("x:=null", ("x", None)),
        ("title=x:=y", ("title", "x:=y")),
        ("empty=", ("empty", "")),
    ],
)
def test_property_assignments(text: str, expected: tuple[str, object]) -> None:
    assert parse_property(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=x", "obj:={}", "bad:=nope"])
def test_bad_assignments_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_property(text)


def test_change_carries_properties_and_deletion() -> None:
    change = build_change("acme", "1001", ["mobilephone=040 123 4567", "phone=null"], delete=True)
    assert change.key == "acme:1001"
    assert change.properties == {"mobilephone": "040 123 4567", "phone": None}
    assert change.deleted is True
    with pytest.raises(ValueError, match="contact_id"):
        build_change("acme", "10:01", [])


def test_exit_codes_for_usage_and_invalid_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["contact", "acme", "1001", "oops"]) == 1
    assert "name=value" in capsys.readouterr().err
