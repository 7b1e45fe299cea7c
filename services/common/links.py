"""Short codes of tracked SMS links (DESIGN A8): derived, not stored, by the action runner;
resolved by the SMS sender's ``GET /r/<code>``.

A code is an HMAC-SHA256, under a server secret, of the SMS's idempotency key and the link,
cut to 80 bits and written in base62. So it is the same for the same SMS (a resend renders
an identical body and segment count), different for another SMS or link, and cannot be
guessed or enumerated without the secret (2**80 codes; the sender answers every unknown
one with the same 404).
"""

from __future__ import annotations

import hashlib
import hmac
import re

CODE_BYTES = 10
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Every code has this many characters: 62**14 > 2**80.
CODE_LENGTH = 14
CODE_PATTERN = re.compile(rf"[0-9A-Za-z]{{{CODE_LENGTH}}}")
REDIRECT_PATH = "/r/"


def _base62(data: bytes, width: int) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def link_code(secret: bytes, idempotency_key: str, url: str) -> str:
    """The short code of ``url`` in the SMS of ``idempotency_key``."""
    mac = hmac.new(secret, f"{idempotency_key}\n{url}".encode(), hashlib.sha256).digest()
    return _base62(mac[:CODE_BYTES], CODE_LENGTH)


def short_url(link_domain: str, code: str) -> str:
    """The tracking URL of ``code`` under an account's ``link_domain`` (e.g. ``https://x.co/r/``)."""
    return f"{link_domain.rstrip('/')}/{code}"


def is_code(text: str) -> bool:
    return CODE_PATTERN.fullmatch(text) is not None
