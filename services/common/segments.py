"""GSM-7 / UCS-2 encoding and segment count of an SMS body (3GPP TS 23.038).

One character outside GSM-7 makes the whole message UCS-2. GSM-7 extension characters
take two septets (ESC + char); characters outside the Basic Multilingual Plane take two
UTF-16 code units. Neither pair is ever split across two parts, as carriers and Twilio's
segment calculator do.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.sms import Encoding

# The default alphabet without ESC (0x1B), and the extension table reached through ESC.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7 = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class SegmentCount(NamedTuple):
    segments: int
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)


def count_segments(body: str) -> SegmentCount:
    """Encoding and number of parts of ``body``; the empty body has 0 segments."""
    if GSM7.issuperset(body):
        if GSM7_EXTENSION.isdisjoint(body):  # the common case: one septet per character
            units = len(body)
            return SegmentCount(_plain_parts(units, GSM7_SINGLE, GSM7_PART), Encoding.GSM7, units)
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in body]
        return SegmentCount(_pack(sizes, GSM7_SINGLE, GSM7_PART), Encoding.GSM7, sum(sizes))
    if all(ord(ch) <= 0xFFFF for ch in body):
        units = len(body)
        return SegmentCount(_plain_parts(units, UCS2_SINGLE, UCS2_PART), Encoding.UCS2, units)
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
    return SegmentCount(_pack(sizes, UCS2_SINGLE, UCS2_PART), Encoding.UCS2, sum(sizes))


def _plain_parts(units: int, single: int, part: int) -> int:
    if units == 0:
        return 0
    if units <= single:
        return 1
    return -(-units // part)


def _pack(sizes: list[int], single: int, part: int) -> int:
    """Parts needed when no unit of size 2 may straddle a part boundary."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts += 1
            used = 0
        used += size
    return parts
