"""Consent vocabulary and the ``subscription-changes`` audit-trail event."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from schemas.envelope import Event, Id, contact_key


class LegalBasis(StrEnum):
    """HubSpot's legal basis values (communication and processing share one list)."""

    LEGITIMATE_INTEREST_PQL = "LEGITIMATE_INTEREST_PQL"
    LEGITIMATE_INTEREST_CLIENT = "LEGITIMATE_INTEREST_CLIENT"
    LEGITIMATE_INTEREST_OTHER = "LEGITIMATE_INTEREST_OTHER"
    PERFORMANCE_OF_CONTRACT = "PERFORMANCE_OF_CONTRACT"
    CONSENT_WITH_NOTICE = "CONSENT_WITH_NOTICE"
    NON_GDPR = "NON_GDPR"
    PROCESS_AND_STORE = "PROCESS_AND_STORE"


class SubscriptionStatus(StrEnum):
    SUBSCRIBED = "SUBSCRIBED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    NOT_SPECIFIED = "NOT_SPECIFIED"


class ConsentSource(StrEnum):
    WORKFLOW = "workflow"
    INBOUND_KEYWORD = "inbound_keyword"
    GATEWAY_ERROR = "gateway_error"
    UPSTREAM = "upstream"


class SubscriptionChange(Event):
    """One change of one contact's SMS consent; ``subscription_type`` None = all SMS (wide)."""

    event_type: Literal["subscription.changed"] = "subscription.changed"
    account_id: Id
    contact_id: Id
    channel: Literal["sms"] = "sms"
    subscription_type: str | None = None
    status: SubscriptionStatus
    previous_status: SubscriptionStatus = SubscriptionStatus.NOT_SPECIFIED
    legal_basis: LegalBasis | None = None
    legal_basis_explanation: str | None = None
    processing_legal_basis: LegalBasis | None = None
    source: ConsentSource
    source_id: str | None = None  # workflow id, keyword, or gateway error code
    phone_masked: str | None = None
    # Evidence of a reply's STOP/START: the provider's id of that inbound message.
    provider_message_id: str | None = None

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)

    @property
    def wide(self) -> bool:
        return self.subscription_type is None
