from __future__ import annotations

from schemas.ledger import LedgerState
from schemas.sms import SmsStatus
from services.common.codec import encode
from services.sms_sender.statuses import (
    advance,
    opt_out_event,
    status_event,
    transition_events,
)
from tests.unit.sms_sender.factories import entry, request

S = LedgerState


def test_status_events_carry_the_ids_and_never_the_number_or_body() -> None:
    sent = advance(entry(S.SENDING, attempts=2), S.SENT, provider_message_id="SM1")
    event = status_event(sent)
    assert (event.status, event.provider_message_id, event.attempts) == (SmsStatus.SENT, "SM1", 2)
    assert (event.account_id, event.contact_id, event.workflow_id) == ("acme", "c1", "welcome-flow")
    raw = encode(event).decode()
    assert request(1).to not in raw
    assert request(1).body not in raw
    assert event.to_masked == "+35840*****00"


def test_the_same_outcome_always_has_the_same_event_id() -> None:
    sent = advance(entry(S.SENDING), S.SENT, provider_message_id="SM1")
    again = advance(entry(S.SENDING), S.SENT, provider_message_id="SM1")
    assert sent.event_id != again.event_id  # ledger entries are distinct writes
    assert status_event(sent).event_id == status_event(again).event_id
    delivered = advance(sent, S.DELIVERED)
    assert status_event(delivered).event_id != status_event(sent).event_id


def test_a_delivery_that_overtakes_the_answer_also_announces_sent() -> None:
    sending = entry(S.SENDING)
    delivered = advance(sending, S.DELIVERED, provider_message_id="SM1")
    statuses = [e.status for e in transition_events(sending, delivered)]
    assert statuses == [SmsStatus.SENT, SmsStatus.DELIVERED]
    sent = advance(sending, S.SENT, provider_message_id="SM1")
    assert [e.status for e in transition_events(sent, advance(sent, S.DELIVERED))] == [
        SmsStatus.DELIVERED
    ]
    assert transition_events(None, sending) == []


def test_failed_statuses_keep_reason_and_code_and_opt_outs_name_the_number() -> None:
    failed = advance(entry(S.SENDING), S.FAILED, reason="recipient_opted_out", error_code="21610")
    event = status_event(failed)
    assert (event.status, event.reason, event.error_code) == (
        SmsStatus.FAILED,
        "recipient_opted_out",
        "21610",
    )
    opt_out = opt_out_event(failed, request(1))
    assert (opt_out.key, opt_out.error_code, opt_out.contact_id) == (
        "acme:+358400000001",
        "21610",
        "c1",
    )
    assert opt_out.event_id == opt_out_event(failed, request(1)).event_id
