"""Consent ledger transitions, the resubscribe rule, and the audit trail they produce."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.definitions import ManageSubscription
from schemas.subscriptions import ConsentSource, LegalBasis, SubscriptionChange, SubscriptionStatus
from services.action_runner.consent import (
    NEEDS_CONSENT,
    OPTED_OUT_OF_ALL,
    ConsentDecision,
    ConsentRecord,
    apply,
    decide_subscription,
    decide_wide,
    may_send,
)
from tests.unit.action_runner.defs import MARKETING, NOON, change, ledger

SUBSCRIBE: dict[str, Any] = {
    "subscription_type": MARKETING,
    "status": "subscribed",
    "legal_basis": "CONSENT_WITH_NOTICE",
    "legal_basis_explanation": "Ticked the SMS box at checkout",
    "processing_legal_basis": "PROCESS_AND_STORE",
}


def manage(record: ConsentRecord | None, **overrides: Any) -> ConsentDecision:
    return decide_subscription(
        record,
        ManageSubscription.model_validate({**SUBSCRIBE, **overrides}),
        account_id="acme",
        contact_id="1001",
        workflow_id="welcome-flow",
        event_id="e1",
        now=NOON,
    )


def wide(record: ConsentRecord | None, status: SubscriptionStatus) -> SubscriptionChange | None:
    return decide_wide(
        record,
        status,
        account_id="acme",
        contact_id="1001",
        source=ConsentSource.INBOUND_KEYWORD,
        source_id="STOP",
        phone_masked="+35840*****67",
        event_id="e2",
        now=NOON,
    )


def test_absent_record_is_not_subscribed() -> None:
    assert not may_send(None, MARKETING)
    assert not may_send(ConsentRecord(), MARKETING)


def test_subscribe_records_every_legal_basis_field() -> None:
    decision = manage(None)
    assert decision.refused is None
    assert decision.change is not None
    audit = decision.change
    assert audit.status is SubscriptionStatus.SUBSCRIBED
    assert audit.previous_status is SubscriptionStatus.NOT_SPECIFIED
    assert audit.legal_basis is LegalBasis.CONSENT_WITH_NOTICE
    assert audit.legal_basis_explanation == "Ticked the SMS box at checkout"
    assert audit.processing_legal_basis is LegalBasis.PROCESS_AND_STORE
    assert (audit.source, audit.source_id) == (ConsentSource.WORKFLOW, "welcome-flow")
    assert (audit.subscription_type, audit.occurred_at, audit.event_id) == (MARKETING, NOON, "e1")
    record = apply(None, audit)
    assert may_send(record, MARKETING)
    entry = record.subscriptions[MARKETING]
    assert entry.legal_basis_explanation == "Ticked the SMS box at checkout"
    assert (entry.at, entry.event_id, entry.source) == (NOON, "e1", ConsentSource.WORKFLOW)


def test_repeating_the_same_subscription_records_nothing() -> None:
    record = apply(None, manage(None).change)  # type: ignore[arg-type]
    assert manage(record) == ConsentDecision()
    changed = manage(record, legal_basis_explanation="Confirmed again by phone")
    assert changed.change is not None
    assert changed.change.previous_status is SubscriptionStatus.SUBSCRIBED


def test_unsubscribe_then_resubscribe_needs_fresh_consent() -> None:
    record = apply(None, manage(None).change)  # type: ignore[arg-type]
    out = manage(
        record,
        status="unsubscribed",
        legal_basis=None,
        legal_basis_explanation=None,
        processing_legal_basis=None,
    )
    assert out.change is not None
    assert out.change.status is SubscriptionStatus.UNSUBSCRIBED
    assert out.change.previous_status is SubscriptionStatus.SUBSCRIBED
    record = apply(record, out.change)
    assert not may_send(record, MARKETING)
    for basis in ("LEGITIMATE_INTEREST_OTHER", "PERFORMANCE_OF_CONTRACT", "NON_GDPR"):
        assert manage(record, legal_basis=basis).refused == NEEDS_CONSENT
    again = manage(record)  # CONSENT_WITH_NOTICE: the person consented anew
    assert again.change is not None
    assert again.change.previous_status.value == "UNSUBSCRIBED"


def test_unsubscribing_twice_records_once() -> None:
    record = ledger(change(SubscriptionStatus.UNSUBSCRIBED))
    assert (
        manage(record, status="unsubscribed", legal_basis=None, legal_basis_explanation=None)
        == ConsentDecision()
    )


def test_opted_out_of_all_sms_cannot_be_resubscribed_by_a_workflow() -> None:
    record = apply(apply(None, manage(None).change), wide(None, SubscriptionStatus.UNSUBSCRIBED))  # type: ignore[arg-type]
    assert record.opted_out_of_all
    # The number's opt-out stops the SMS (gates); the contact's ledger keeps its types.
    assert may_send(record, MARKETING)
    assert manage(record).refused == OPTED_OUT_OF_ALL
    # A workflow may still unsubscribe.
    assert manage(record, status="unsubscribed").change is not None
    # START from the person lifts it; the type's own SUBSCRIBED status was kept meanwhile.
    started = wide(record, SubscriptionStatus.SUBSCRIBED)
    assert started is not None
    assert started.previous_status is SubscriptionStatus.UNSUBSCRIBED
    record = apply(record, started)
    assert may_send(record, MARKETING)
    assert manage(record, legal_basis_explanation="new").change is not None


def test_wide_changes_only_when_status_moves() -> None:
    first = wide(None, SubscriptionStatus.UNSUBSCRIBED)
    assert first is not None
    assert first.wide
    assert first.phone_masked == "+35840*****67"
    assert (first.source, first.source_id) == (ConsentSource.INBOUND_KEYWORD, "STOP")
    assert wide(apply(None, first), SubscriptionStatus.UNSUBSCRIBED) is None


def test_record_survives_the_table_round_trip() -> None:
    record = ledger(
        change(SubscriptionStatus.SUBSCRIBED),
        change(SubscriptionStatus.UNSUBSCRIBED, None, ConsentSource.GATEWAY_ERROR),
    )
    assert ConsentRecord.model_validate(record.model_dump(mode="json")) == record


STATUSES = st.sampled_from([SubscriptionStatus.SUBSCRIBED, SubscriptionStatus.UNSUBSCRIBED])
CHANGES = st.lists(st.tuples(STATUSES, st.sampled_from([MARKETING, "other", None])), max_size=12)


@given(CHANGES)
def test_ledger_is_the_fold_of_its_audit_trail(steps: list[tuple[SubscriptionStatus, Any]]) -> None:
    changes = [change(status, kind, ConsentSource.UPSTREAM) for status, kind in steps]
    record = ledger(*changes)
    # Replaying the trail (at-least-once) lands on the same ledger.
    assert ledger(*changes, *changes) == record
    last_type = [c.status for c in changes if c.subscription_type == MARKETING][-1:]
    last_wide = [c.status for c in changes if c.subscription_type is None][-1:]
    # The wide flag is the contact's audit trail; the number's opt-out gates the send.
    assert may_send(record, MARKETING) is (last_type == [SubscriptionStatus.SUBSCRIBED])
    assert record.opted_out_of_all is (last_wide == [SubscriptionStatus.UNSUBSCRIBED])
