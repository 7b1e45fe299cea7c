"""GSM-7 / UCS-2 segment counting for the simulator's responses (REFERENCE.md 6)."""

from __future__ import annotations

from typing import Literal, NamedTuple

Encoding = Literal["gsm7", "ucs2"]

# 3GPP TS 23.038 default alphabet (without ESC) and its extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class SegmentCount(NamedTuple):
    segments: int
    encoding: Encoding


def count_segments(body: str) -> SegmentCount:
    """Segments and encoding of ``body``; one non-GSM character makes all of it UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        septets = [2 if ch in GSM7_EXTENSION else 1 for ch in body]
        return SegmentCount(_pack(septets, GSM7_SINGLE, GSM7_PART), "gsm7")
    code_units = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
    return SegmentCount(_pack(code_units, UCS2_SINGLE, UCS2_PART), "ucs2")


def _pack(units: list[int], single: int, part: int) -> int:
    """Count parts; an escape pair or surrogate pair is never split across two parts."""
    total = sum(units)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in units:
        if used + size > part:
            parts += 1
            used = 0
        used += size
    return parts
