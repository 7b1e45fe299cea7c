"""GSM-7 / UCS-2 segment counting shared by the simulator and the runner (Twilio's vectors)."""

from __future__ import annotations

import pytest

from services.common.segments import count_segments


@pytest.mark.parametrize(
    ("body", "segments", "encoding"),
    [
        ("", 0, "gsm7"),
        ("Hei", 1, "gsm7"),
        ("a" * 160, 1, "gsm7"),
        ("a" * 161, 2, "gsm7"),
        ("a" * 306, 2, "gsm7"),
        ("a" * 307, 3, "gsm7"),
        ("a" * 159 + "€", 2, "gsm7"),  # € counts as two septets
        ("a" * 158 + "€", 1, "gsm7"),
        ("{}" * 40, 1, "gsm7"),  # 160 septets
        ("{}" * 41, 2, "gsm7"),
        ("a" * 152 + "€" + "a" * 152, 3, "gsm7"),  # the escape pair is never split
        ("Ääkkösiä ja Ñ", 1, "gsm7"),
        ("Ç", 1, "gsm7"),
        ("ç", 1, "ucs2"),  # lowercase c-cedilla is not GSM-7
        ("`", 1, "ucs2"),
        ("it\u2019s", 1, "ucs2"),  # a curly quote silently forces UCS-2
        ("ж" * 70, 1, "ucs2"),
        ("ж" * 71, 2, "ucs2"),
        ("a" * 69 + "😀", 2, "ucs2"),  # the emoji is two UTF-16 code units
        ("a" * 66 + "😀" + "a" * 66, 3, "ucs2"),  # the surrogate pair is never split
    ],
)
def test_count_segments(body: str, segments: int, encoding: str) -> None:
    counted = count_segments(body)
    assert (counted.segments, counted.encoding) == (segments, encoding)
