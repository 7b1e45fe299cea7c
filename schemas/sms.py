"""SMS requests, status events, inbound replies and the status/reason vocabulary."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import E164, E164_PATTERN, Event, Id, contact_key


class SmsStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL_STATUSES = frozenset(
    {SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.FAILED, SmsStatus.SKIPPED}
)


class SkipReason(StrEnum):
    """Why an SMS was not sent, in the order the gates are checked."""

    WORKFLOW_DISABLED = "workflow_disabled"
    SMS_ACCESS_MISSING = "sms_access_missing"
    MESSAGE_NOT_PUBLISHED = "message_not_published"
    NOT_MARKETING_CONTACT = "not_marketing_contact"
    NOT_SUBSCRIBED = "not_subscribed"
    NO_PHONE_NUMBER = "no_phone_number"
    INVALID_PHONE_NUMBER = "invalid_phone_number"
    # The number itself sent a STOP-family reply (A8): checked again by the sender.
    OPTED_OUT = "opted_out"
    TOO_LONG = "too_long"
    # After quiet hours and sending windows: a deferred SMS counts only when it goes out.
    FREQUENCY_CAPPED = "frequency_capped"


DEFERRED_QUIET_HOURS = "quiet_hours"
DEFERRED_SENDING_WINDOW = "sending_window"


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


class SmsRequest(Event):
    """Send one SMS. ``idempotency_key`` derives from the business action, never from time."""

    event_type: Literal["sms.requested"] = "sms.requested"
    idempotency_key: str = Field(min_length=8, max_length=255)
    account_id: Id
    contact_id: Id
    workflow_id: str | None = None
    enrollment_id: str | None = None
    action_id: str | None = None
    message_id: str | None = None
    to: E164
    from_: str = Field(alias="from", pattern=E164_PATTERN)
    body: str = Field(min_length=1)
    encoding: Encoding
    segments: int = Field(ge=1)
    to_masked: str
    # Tracked links in the body (A8): short code -> original URL, for the sender's redirects.
    links: dict[str, str] | None = None

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)


class SmsStatusEvent(Event):
    """One state change of one SMS; never carries the full number or the body."""

    event_type: Literal["sms.status"] = "sms.status"
    idempotency_key: str | None = None
    account_id: Id
    contact_id: Id
    workflow_id: str | None = None
    enrollment_id: str | None = None
    message_id: str | None = None
    status: SmsStatus
    reason: str | None = None
    to_masked: str | None = None
    segments: int | None = None
    encoding: Encoding | None = None
    attempts: int = 0
    provider_message_id: str | None = None
    error_code: str | None = None
    deferred_until: AwareDatetime | None = None

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)


class InboundSms(Event):
    """A reply from a phone; keyed ``{account_id}:{E.164 number}``."""

    event_type: Literal["sms.inbound"] = "sms.inbound"
    account_id: Id
    from_: str = Field(alias="from", pattern=E164_PATTERN)
    to: str
    body: str
    provider_message_id: str | None = None

    @property
    def key(self) -> str:
        return number_key(self.account_id, self.from_)


class ProviderOptOut(Event):
    """The gateway refused a number as unsubscribed (Twilio 21610); also on ``sms-inbound``."""

    event_type: Literal["sms.provider_opt_out"] = "sms.provider_opt_out"
    account_id: Id
    phone: E164
    contact_id: str | None = None
    error_code: str
    idempotency_key: str | None = None

    @property
    def key(self) -> str:
        return number_key(self.account_id, self.phone)


class OptOutSource(StrEnum):
    REPLY = "reply"
    PROVIDER = "provider"  # Twilio 21610
    OPERATOR = "operator"


class NumberOptOut(Event):
    """A number's opt-out state for one account (compacted ``opt-outs``, latest per number)."""

    event_type: Literal["sms.number_opt_out"] = "sms.number_opt_out"
    account_id: Id
    number: E164
    opted_out: bool
    keyword: str | None = None
    source: OptOutSource
    # Evidence: the reply's or the provider's message id.
    provider_message_id: str | None = None

    @property
    def key(self) -> str:
        return number_key(self.account_id, self.number)


def number_key(account_id: str, number: str) -> str:
    """The key of number-scoped topics: ``{account_id}:{E.164 number}``."""
    return f"{account_id}:{number}"


class SmsLinkClicked(Event):
    """One click on a tracked short link of one SMS (``sms-clicks``)."""

    event_type: Literal["sms.link_clicked"] = "sms.link_clicked"
    account_id: Id
    contact_id: Id
    workflow_id: str | None = None
    message_id: str | None = None
    idempotency_key: str | None = None
    url: str

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)
