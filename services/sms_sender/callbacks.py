"""Webhook payloads -> delivery reports and inbound replies, and the ledger move a delivery
report makes. Pure: both API styles (generic JSON, Twilio form fields) in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.ledger import LedgerState, SmsLedgerEntry
from services.sms_sender.ledger import can_follow
from services.sms_sender.statuses import advance

# Provider statuses that change what smsflow reports; the rest (queued, sending, ...) do not.
REPORTED = {
    "sent": LedgerState.SENT,
    "delivered": LedgerState.DELIVERED,
    "undelivered": LedgerState.UNDELIVERED,
    "failed": LedgerState.FAILED,
}


class PayloadError(ValueError):
    """A webhook body that lacks what it must carry; the message names the field."""


@dataclass(frozen=True)
class DeliveryReport:
    provider_message_id: str
    status: str
    error_code: str | None = None
    idempotency_key: str | None = None

    @property
    def dedup_key(self) -> tuple[str, str]:
        return (self.provider_message_id, self.status)


@dataclass(frozen=True)
class InboundReply:
    from_: str
    to: str
    body: str
    provider_message_id: str  # what de-duplicates replies


def _text(payload: Mapping[str, object], name: str, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{name}: expected a string")
    return str(value)


def generic_report(payload: Mapping[str, object], key_from_url: str | None) -> DeliveryReport:
    return DeliveryReport(
        provider_message_id=_text(payload, "id") or "",
        status=(_text(payload, "status") or "").lower(),
        error_code=_text(payload, "error_code", required=False),
        idempotency_key=key_from_url or _text(payload, "idempotency_key", required=False),
    )


def twilio_report(form: Mapping[str, str], key_from_url: str | None) -> DeliveryReport:
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid:
        raise PayloadError("MessageSid: missing")
    if not status:
        raise PayloadError("MessageStatus: missing")
    return DeliveryReport(sid, status.lower(), form.get("ErrorCode") or None, key_from_url)


# Inbound replies must carry the provider's message id: it is what de-duplicates them.


def generic_inbound(payload: Mapping[str, object]) -> InboundReply:
    from_, to = _text(payload, "from") or "", _text(payload, "to") or ""
    provider_id = _text(payload, "id", required=False) or _text(
        payload, "message_id", required=False
    )
    if provider_id is None:
        raise PayloadError("id: missing")
    body = _text(payload, "body", required=False) or ""
    return InboundReply(from_, to, body, provider_id)


def twilio_inbound(form: Mapping[str, str]) -> InboundReply:
    for name in ("MessageSid", "From", "To"):
        if not form.get(name):
            raise PayloadError(f"{name}: missing")
    return InboundReply(form["From"], form["To"], form.get("Body", ""), form["MessageSid"])


def apply_report(entry: SmsLedgerEntry, report: DeliveryReport) -> SmsLedgerEntry | None:
    """The entry a report moves ``entry`` to, or None when it changes nothing: a status
    smsflow does not report, a repeat of (provider id, status), or a step backwards."""
    state = REPORTED.get(report.status)
    if state is None:
        return None
    if entry.provider_message_id and entry.provider_message_id != report.provider_message_id:
        return None  # about another message than the one this key was accepted as
    new = advance(
        entry,
        state,
        provider_message_id=report.provider_message_id,
        error_code=None if state is LedgerState.SENT else report.error_code,
        reason=f"provider_{report.status}" if state is LedgerState.FAILED else None,
    )
    return new if can_follow(entry, new) else None
