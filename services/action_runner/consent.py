"""The SMS consent ledger of one contact, and the rules that change it.

Per subscription type: status, legal basis for communication, its explanation, legal basis
for processing, source and time. Plus the wide flag, "opted out of all SMS", set by an
inbound STOP-family keyword or a gateway's "unsubscribed recipient" error from one of the
contact's numbers and lifted only by the person (START/UNSTOP from a number it holds). It
is the contact's audit trail and bars a workflow from resubscribing; what stops an SMS is
the number's own opt-out (``opt-outs``), checked by the send gate and by the sender. No
record, or no entry for a type, means not subscribed.

Resubscribe rule (a workflow's ``manage_subscription: subscribed``):

1. refused (``opted_out_of_all_sms``) while the contact is opted out of all SMS: only the
   person can lift that, by texting START/UNSTOP (as a carrier's STOP block is lifted);
2. refused (``resubscribe_requires_consent``) when the type is UNSUBSCRIBED and the
   action's legal basis is not CONSENT_WITH_NOTICE: an objection to marketing cannot be
   overridden by legitimate interest or contract, only by fresh, recorded consent;
3. otherwise applied; a request that changes nothing records nothing (subscribing again
   with another legal basis is a change: the new basis is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from schemas.definitions import ManageSubscription
from schemas.subscriptions import (
    ConsentSource,
    LegalBasis,
    SubscriptionChange,
    SubscriptionStatus,
)

OPTED_OUT_OF_ALL = "opted_out_of_all_sms"
NEEDS_CONSENT = "resubscribe_requires_consent"
NO_STATUS_CHANGE = "no_status_change"
RESUBSCRIBE_BASES = frozenset({LegalBasis.CONSENT_WITH_NOTICE})


class ConsentEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: SubscriptionStatus
    legal_basis: LegalBasis | None = None
    legal_basis_explanation: str | None = None
    processing_legal_basis: LegalBasis | None = None
    source: ConsentSource
    source_id: str | None = None
    at: datetime
    event_id: str


class ConsentRecord(BaseModel):
    """One contact's ledger, as stored in the changelog-backed table."""

    model_config = ConfigDict(frozen=True)

    subscriptions: dict[str, ConsentEntry] = {}
    wide: ConsentEntry | None = None

    def status_of(self, subscription_type: str | None) -> SubscriptionStatus:
        entry = (
            self.wide if subscription_type is None else self.subscriptions.get(subscription_type)
        )
        return entry.status if entry else SubscriptionStatus.NOT_SPECIFIED

    @property
    def opted_out_of_all(self) -> bool:
        return self.wide is not None and self.wide.status is SubscriptionStatus.UNSUBSCRIBED


EMPTY = ConsentRecord()


def may_send(record: ConsentRecord | None, subscription_type: str) -> bool:
    """Subscribed to the type. Absent record: no.

    The wide flag does not gate sending: a STOP binds the number it came from, whichever
    contact holds it (DESIGN A8), and the send gate checks that number's opt-out itself.
    """
    if record is None:
        return False
    return record.status_of(subscription_type) is SubscriptionStatus.SUBSCRIBED


def apply(record: ConsentRecord | None, change: SubscriptionChange) -> ConsentRecord:
    """The ledger after ``change``. Applying the same change twice changes nothing."""
    record = record or EMPTY
    entry = ConsentEntry(
        status=change.status,
        legal_basis=change.legal_basis,
        legal_basis_explanation=change.legal_basis_explanation,
        processing_legal_basis=change.processing_legal_basis,
        source=change.source,
        source_id=change.source_id,
        at=change.occurred_at,
        event_id=change.event_id,
    )
    if change.wide:
        return record.model_copy(update={"wide": entry})
    return record.model_copy(
        update={"subscriptions": {**record.subscriptions, str(change.subscription_type): entry}}
    )


@dataclass(frozen=True)
class ConsentDecision:
    """A change to record, or the reason a request was refused; neither: nothing to do."""

    change: SubscriptionChange | None = None
    refused: str | None = None


def decide_subscription(
    record: ConsentRecord | None,
    action: ManageSubscription,
    *,
    account_id: str,
    contact_id: str,
    workflow_id: str,
    event_id: str,
    now: datetime,
) -> ConsentDecision:
    """Apply a workflow's ``manage_subscription`` under the resubscribe rule."""
    record = record or EMPTY
    current = record.subscriptions.get(action.subscription_type)
    previous = current.status if current else SubscriptionStatus.NOT_SPECIFIED
    target = (
        SubscriptionStatus.SUBSCRIBED
        if action.status == "subscribed"
        else SubscriptionStatus.UNSUBSCRIBED
    )
    if target is SubscriptionStatus.SUBSCRIBED:
        if record.opted_out_of_all:
            return ConsentDecision(refused=OPTED_OUT_OF_ALL)
        if (
            previous is SubscriptionStatus.UNSUBSCRIBED
            and action.legal_basis not in RESUBSCRIBE_BASES
        ):
            return ConsentDecision(refused=NEEDS_CONSENT)
    if previous is target and (
        target is SubscriptionStatus.UNSUBSCRIBED
        or current is None
        or (current.legal_basis, current.legal_basis_explanation, current.processing_legal_basis)
        == (action.legal_basis, action.legal_basis_explanation, action.processing_legal_basis)
    ):
        return ConsentDecision()  # nothing moves (a new legal basis for a subscription does)
    return ConsentDecision(
        change=SubscriptionChange(
            event_id=event_id,
            occurred_at=now,
            account_id=account_id,
            contact_id=contact_id,
            subscription_type=action.subscription_type,
            status=target,
            previous_status=previous,
            legal_basis=action.legal_basis,
            legal_basis_explanation=action.legal_basis_explanation,
            processing_legal_basis=action.processing_legal_basis,
            source=ConsentSource.WORKFLOW,
            source_id=workflow_id,
        )
    )


def decide_wide(
    record: ConsentRecord | None,
    status: SubscriptionStatus,
    *,
    account_id: str,
    contact_id: str,
    source: ConsentSource,
    source_id: str | None,
    phone_masked: str | None,
    event_id: str,
    now: datetime,
    provider_message_id: str | None = None,
) -> SubscriptionChange | None:
    """Opt out of (or back in to) all SMS; None when the contact is already there."""
    previous = (record or EMPTY).status_of(None)
    if previous is status:
        return None
    return SubscriptionChange(
        event_id=event_id,
        occurred_at=now,
        account_id=account_id,
        contact_id=contact_id,
        subscription_type=None,
        status=status,
        previous_status=previous,
        source=source,
        source_id=source_id,
        phone_masked=phone_masked,
        provider_message_id=provider_message_id,
    )
