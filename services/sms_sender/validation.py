"""Checks a decoded request must pass before it may reach the rate limiter or the gateway.
Pure. A request that fails one is dead-lettered: it can neither crash the sender (a CR or
LF in a header raises in aiohttp) nor stall a sender number (``segments: 1e9`` would hold
its rate limit for days).
"""

from __future__ import annotations

import re

from schemas.sms import SmsRequest

# The key travels as an HTTP header value and in a URL: visible ASCII only, no spaces.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{8,255}")
# Longest body that can fit ``segments`` segments: 160 GSM-7 characters in one.
CHARS_PER_SEGMENT = 160


def problem(request: SmsRequest, max_segments: int) -> str | None:
    """Why ``request`` must not be sent, or None."""
    if not KEY_PATTERN.fullmatch(request.idempotency_key):
        return "idempotency_key: must be 8-255 visible ASCII characters (no spaces, CR or LF)"
    if request.segments > max_segments:
        return f"segments: {request.segments} is more than the maximum of {max_segments}"
    if len(request.body) > max_segments * CHARS_PER_SEGMENT:
        return f"body: {len(request.body)} characters cannot fit {max_segments} segments"
    return None
