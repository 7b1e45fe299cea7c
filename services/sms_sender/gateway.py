"""The ``SmsGateway`` protocol and the outcomes a send can have.

An outcome is one of four values, decided by the adapter from what it saw on the wire:
``Accepted`` (the provider took it), ``Rejected`` (a permanent refusal with the provider's
error code), ``Refused`` (not processed: 429, 409, no connection; safe to send again) and
``Ambiguous`` (the request left and no answer, or a 408/5xx, came back: it may or may not
have been sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.sms import SmsRequest

# Twilio's code for a recipient who replied STOP: the send is refused for good and the
# number must be opted out.
OPTED_OUT_CODE = "21610"

# Provider error codes -> the ``reason`` of the ``failed`` status event.
REJECTION_REASONS = {
    "21211": "invalid_phone_number",
    "21610": "recipient_opted_out",
    "21612": "unroutable_number",
    "21614": "not_a_mobile_number",
    "21617": "body_too_long",
    "20003": "gateway_unauthorized",
    "422": "idempotency_key_reused",
    "invalid_request": "invalid_request",
}


@dataclass(frozen=True)
class Accepted:
    provider_message_id: str
    segments: int | None = None


@dataclass(frozen=True)
class Rejected:
    error_code: str
    http_status: int
    detail: str = ""

    @property
    def reason(self) -> str:
        return REJECTION_REASONS.get(self.error_code, "gateway_rejected")

    @property
    def opted_out(self) -> bool:
        return self.error_code == OPTED_OUT_CODE


@dataclass(frozen=True)
class Refused:
    """Not processed by the gateway; sending again cannot duplicate."""

    reason: str
    http_status: int | None = None
    error_code: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Ambiguous:
    """The request left; whether the gateway processed it is unknown (no answer, or a 408
    or 5xx that a provider or a proxy in front of it may give after creating the message)."""

    reason: str
    http_status: int | None = None
    error_code: str | None = None
    retry_after_s: float | None = None


SendOutcome = Accepted | Rejected | Refused | Ambiguous


class SmsGateway(Protocol):
    """One SMS provider API. ``dedupes`` tells whether a resend with the same key is safe."""

    api: str
    dedupes: bool

    async def send(self, request: SmsRequest, status_callback: str) -> SendOutcome: ...

    async def close(self) -> None: ...
