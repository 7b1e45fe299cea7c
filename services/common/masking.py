"""Masking of phone numbers for logs and status events: ``+35840*****67``."""

from __future__ import annotations

import re

# A run of digits (with the usual separators) standing alone: digits inside ids such as
# idempotency keys or provider message ids are left as they are.
_PHONE = re.compile(r"(?<![\w\-])\+?\d[\d \-()]{6,}\d(?![\w\-])")


def mask_phone(number: str | None) -> str | None:
    """Keep the country/area prefix and the last two digits; hide the rest."""
    if number is None:
        return None
    digits = re.sub(r"\D", "", number)
    if len(digits) < 6:
        return "*" * len(digits)
    plus = "+" if number.strip().startswith("+") else ""
    keep_head = min(5, len(digits) - 4)
    hidden = len(digits) - keep_head - 2
    return f"{plus}{digits[:keep_head]}{'*' * hidden}{digits[-2:]}"


def mask_phones_in(text: str) -> str:
    """Mask every phone-number-like run in free text (e.g. exception messages)."""
    return _PHONE.sub(lambda m: mask_phone(m.group(0)) or "", text)
