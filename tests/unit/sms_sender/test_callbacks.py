from __future__ import annotations

import pytest

from schemas.ledger import LedgerState
from services.sms_sender.callbacks import (
    DeliveryReport,
    PayloadError,
    apply_report,
    generic_inbound,
    generic_report,
    twilio_inbound,
    twilio_report,
)
from services.sms_sender.statuses import advance
from tests.unit.sms_sender.factories import entry

S = LedgerState

# What the simulator (and Twilio) post, as recorded.
TWILIO_DELIVERED = {
    "MessageSid": "SM0f1e",
    "MessageStatus": "delivered",
    "SmsSid": "SM0f1e",
    "SmsStatus": "delivered",
    "From": "+358451234567",
    "To": "+358401234567",
    "AccountSid": "AC" + "0" * 32,
    "ApiVersion": "2010-04-01",
}
TWILIO_UNDELIVERED = {**TWILIO_DELIVERED, "MessageStatus": "undelivered", "ErrorCode": "30003"}
GENERIC_SENT = {
    "id": "msg_77",
    "status": "sent",
    "error_code": None,
    "idempotency_key": "sms-key-0001",
    "to": "+358401234567",
    "occurred_at": "2026-11-27T10:00:00Z",
}


def test_parses_both_api_styles() -> None:
    assert twilio_report(TWILIO_DELIVERED, "sms-key-0001") == DeliveryReport(
        "SM0f1e", "delivered", None, "sms-key-0001"
    )
    assert twilio_report(TWILIO_UNDELIVERED, None).error_code == "30003"
    assert generic_report(GENERIC_SENT, None) == DeliveryReport(
        "msg_77", "sent", None, "sms-key-0001"
    )
    assert generic_report({**GENERIC_SENT, "error_code": 30006}, None).error_code == "30006"


def test_parses_inbound_replies() -> None:
    reply = twilio_inbound({"MessageSid": "SM9", "From": "+1555", "To": "+1666", "Body": "STOP"})
    assert (reply.from_, reply.to, reply.body, reply.provider_message_id) == (
        "+1555",
        "+1666",
        "STOP",
        "SM9",
    )
    generic = generic_inbound({"id": "in_1", "from": "+1555", "to": "+1666", "body": "stop"})
    assert generic.body == "stop"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({k: v for k, v in TWILIO_DELIVERED.items() if "Sid" not in k}, "MessageSid"),
        ({"MessageSid": "SM1"}, "MessageStatus"),
    ],
)
def test_a_report_without_its_ids_names_the_missing_field(payload: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PayloadError, match=field):
        twilio_report(payload, None)


def test_generic_payload_errors_name_the_field() -> None:
    with pytest.raises(PayloadError, match="id"):
        generic_report({"status": "sent"}, None)
    with pytest.raises(PayloadError, match="from"):
        generic_inbound({"to": "+1666", "body": "x"})


def test_reports_move_the_key_forward_once_per_provider_id_and_status() -> None:
    sent = advance(entry(S.SENDING), S.SENT, provider_message_id="SM1")
    delivered = apply_report(sent, DeliveryReport("SM1", "delivered"))
    assert delivered is not None
    assert delivered.state is S.DELIVERED
    assert apply_report(delivered, DeliveryReport("SM1", "delivered")) is None  # repeat
    assert apply_report(sent, DeliveryReport("SM1", "sent")) is None  # already known
    assert apply_report(sent, DeliveryReport("SM1", "queued")) is None  # not reported


def test_a_report_before_the_gateway_answer_settles_the_key() -> None:
    moved = apply_report(entry(S.SENDING), DeliveryReport("SM5", "sent"))
    assert moved is not None
    assert (moved.state, moved.provider_message_id) == (S.SENT, "SM5")


def test_a_report_about_another_message_is_ignored() -> None:
    sent = advance(entry(S.SENDING), S.SENT, provider_message_id="SM1")
    assert apply_report(sent, DeliveryReport("SM2", "delivered")) is None


def test_undelivered_and_failed_keep_the_provider_error_code() -> None:
    sent = advance(entry(S.SENDING), S.SENT, provider_message_id="SM1")
    undelivered = apply_report(sent, DeliveryReport("SM1", "undelivered", "30003"))
    assert undelivered is not None
    assert (undelivered.state, undelivered.error_code) == (S.UNDELIVERED, "30003")
    failed = apply_report(sent, DeliveryReport("SM1", "failed", "30007"))
    assert failed is not None
    assert (failed.state, failed.reason, failed.error_code) == (
        S.FAILED,
        "provider_failed",
        "30007",
    )


def test_inbound_replies_must_carry_the_providers_message_id() -> None:
    reply = generic_inbound({"message_id": "in_2", "from": "+1555", "to": "+1666"})
    assert reply.provider_message_id == "in_2"
    with pytest.raises(PayloadError, match="id: missing"):
        generic_inbound({"from": "+1555", "to": "+1666", "body": "STOP"})
    with pytest.raises(PayloadError, match="MessageSid: missing"):
        twilio_inbound({"From": "+1555", "To": "+1666", "Body": "STOP"})
