"""Webhook signatures: Twilio's ``X-Twilio-Signature`` and smsflow's ``X-Smsflow-Signature``.

Pure functions shared by whoever signs (the gateway simulator) and whoever verifies (the SMS
sender). smsflow's scheme follows Stripe's: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>">``. The timestamp is signed too, so an old request cannot be replayed with a
fresh one; a receiver refuses one more than ``TOLERANCE_S`` away from its clock.
Twilio's scheme carries no time: replays of it are stopped by de-duplicating message ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from enum import StrEnum

SMSFLOW_SIGNATURE_HEADER = "X-Smsflow-Signature"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TOLERANCE_S = 300

_SMSFLOW_PART = re.compile(r"(t|v1)=([0-9a-f]+)")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class SignatureProblem(StrEnum):
    """Why a signature was refused; ``missing`` and ``malformed`` are not attempts at all."""

    MISSING = "missing"
    MALFORMED = "malformed"
    STALE = "stale"
    MISMATCH = "mismatch"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...)).

    ``url`` is the full URL the request is posted to, query string included;
    POST parameters are appended sorted by name, each as name then value.
    """
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], header: str | None
) -> SignatureProblem | None:
    if header is None or not header.strip():
        return SignatureProblem.MISSING
    # Anything but base64 (non-ASCII included) is refused before comparing: compare_digest
    # raises on non-ASCII text.
    if not _BASE64.fullmatch(header.strip()):
        return SignatureProblem.MALFORMED
    expected = twilio_signature(auth_token, url, params).encode("ascii")
    if not hmac.compare_digest(expected, header.strip().encode("ascii")):
        return SignatureProblem.MISMATCH
    return None


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str
) -> bool:
    return check_twilio_signature(auth_token, url, params, signature) is None


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    signed = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def smsflow_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``; ``t`` is now
    unless given."""
    t = str(int(time.time()) if timestamp is None else timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def check_smsflow_signature(
    secret: str,
    body: bytes,
    header: str | None,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> SignatureProblem | None:
    """None when ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s``.

    Several ``v1`` values may be given (one per secret while a secret is rotated); one
    matching is enough.
    """
    if header is None or not header.strip():
        return SignatureProblem.MISSING
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        match = _SMSFLOW_PART.fullmatch(part.strip())
        if match is None:
            return SignatureProblem.MALFORMED
        name, value = match.groups()
        if name == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                return SignatureProblem.MALFORMED
            timestamp = value
        else:
            candidates.append(value)
    if timestamp is None or not candidates:
        return SignatureProblem.MALFORMED
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return SignatureProblem.STALE
    expected = _digest(secret, timestamp, body).encode("ascii")
    # Every candidate is compared, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, value.encode("ascii")) for value in candidates]
    return None if any(matches) else SignatureProblem.MISMATCH


def verify_smsflow_signature(
    secret: str, body: bytes, signature: str | None, now: float | None = None
) -> bool:
    return check_smsflow_signature(secret, body, signature, now) is None
