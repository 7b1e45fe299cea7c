from __future__ import annotations

import pytest
import structlog

from services.common.logging import redact
from services.common.masking import mask_phone, mask_phones_in


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+358401234567", "+35840*****67"),
        ("+14155550123", "+14155****23"),
        ("040 123 4567", "04012***67"),
        ("12345", "*****"),
        (None, None),
    ],
)
def test_mask_phone_keeps_prefix_and_last_two(number: str | None, masked: str | None) -> None:
    assert mask_phone(number) == masked


def test_free_text_numbers_are_masked() -> None:
    assert mask_phones_in("cannot parse +358401234567 now") == "cannot parse +35840*****67 now"
    assert mask_phones_in("to 040 123 4567.") == "to 04012***67."


@pytest.mark.parametrize("text", ["sms-3f2a9c0d1e12345678", "bench-00001286", "msg_1234567890ab"])
def test_digits_inside_ids_are_left_alone(text: str) -> None:
    assert mask_phones_in(text) == text


def test_log_lines_never_carry_full_numbers_or_bodies() -> None:
    with structlog.testing.capture_logs(processors=[redact]) as logs:
        structlog.get_logger().info(
            "sms_sent", to="+358401234567", body="Hei Aino", detail="sent to +358401234567"
        )
    (line,) = logs
    assert line["to"] == "+35840*****67"
    assert line["body"] == "<redacted>"
    assert "+358401234567" not in str(line)
