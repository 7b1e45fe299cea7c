"""Segment counting pinned by golden vectors (Twilio's segment calculator)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.sms import Encoding
from services.common.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments

CYRILLIC = "Ж"
EMOJI = "😀"


@pytest.mark.parametrize(
    ("body", "segments", "encoding"),
    [
        ("", 0, Encoding.GSM7),
        ("a", 1, Encoding.GSM7),
        ("a" * 160, 1, Encoding.GSM7),
        ("a" * 161, 2, Encoding.GSM7),
        ("a" * 306, 2, Encoding.GSM7),
        ("a" * 307, 3, Encoding.GSM7),
        ("a" * 159 + "€", 2, Encoding.GSM7),  # € is ESC + e: 161 septets
        ("a" * 158 + "€", 1, Encoding.GSM7),  # exactly 160 septets
        ("{" * 80, 1, Encoding.GSM7),
        ("{" * 81, 2, Encoding.GSM7),
        # € straddling the 153-septet part boundary moves whole to the next part.
        ("a" * 152 + "€" + "a" * 152, 3, Encoding.GSM7),
        (CYRILLIC * 70, 1, Encoding.UCS2),
        (CYRILLIC * 71, 2, Encoding.UCS2),
        ("a" * 69 + EMOJI, 2, Encoding.UCS2),  # a surrogate pair: 71 code units
        ("a" * 68 + EMOJI, 1, Encoding.UCS2),
        # An emoji straddling the 67-unit part boundary is not split.
        ("a" * 66 + EMOJI + "a" * 66, 3, Encoding.UCS2),
        ("a" * 134, 1, Encoding.GSM7),
        ("ç", 1, Encoding.UCS2),  # lowercase ç is not GSM-7 (Ç is)
        ("Ç" * 160, 1, Encoding.GSM7),
        ("`", 1, Encoding.UCS2),
        ("It\u2019s here", 1, Encoding.UCS2),  # a curly apostrophe forces UCS-2
        ("Hei Aino! Tervetuloa. äöå ÄÖÅ", 1, Encoding.GSM7),
        ("a" * 159 + "\u2019", 3, Encoding.UCS2),  # 160 chars, UCS-2: ceil(160 / 67)
    ],
)
def test_golden_vectors(body: str, segments: int, encoding: Encoding) -> None:
    count = count_segments(body)
    assert (count.segments, count.encoding) == (segments, encoding)


def test_extension_characters_count_twice() -> None:
    for char in GSM7_EXTENSION:
        assert count_segments(char).units == 2
    assert count_segments("€uro").units == 5


def _reference(body: str) -> int:
    """A slow, obviously right packer: place units one by one into parts."""
    if not body:
        return 0
    gsm = all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body)
    sizes = [
        (2 if c in GSM7_EXTENSION else 1) if gsm else (2 if ord(c) > 0xFFFF else 1) for c in body
    ]
    single, part = (160, 153) if gsm else (70, 67)
    if sum(sizes) <= single:
        return 1
    parts = [0]
    for size in sizes:
        if parts[-1] + size > part:
            parts.append(0)
        parts[-1] += size
    return len(parts)


ALPHABET = st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "Ж", "😀", "\u2019", "ç"])


@given(st.lists(ALPHABET, max_size=400).map("".join))
def test_matches_reference_packer(body: str) -> None:
    assert count_segments(body).segments == _reference(body)


@given(st.text(max_size=300))
def test_any_text_counts_without_error(body: str) -> None:
    count = count_segments(body)
    assert (count.segments == 0) == (body == "")
    assert count.segments <= max(len(body), 1)
