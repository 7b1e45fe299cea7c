"""The runner's own topics (created at start, named after the app) and what they carry.

They re-key work between the two keyings the runner sees: contacts (``account:contact``,
like ``actions``) and numbers (``account:+E164``, like ``sms-inbound``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import E164_PATTERN, Id, contact_key
from schemas.subscriptions import ConsentSource, SubscriptionStatus

# Contact changes re-keyed by number: keeps the number -> contacts index.
PHONE_INDEX = "phone-index"
# Wide consent changes re-keyed by contact: applied where the contact's ledger lives.
CONSENT_COMMANDS = "consent-commands"
# Contacts whose numbers must be read again (their account's region arrived or changed).
PHONE_REINDEX = "phone-reindex"


class _Internal(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1)


class PhoneIndexUpdate(_Internal):
    """Contact ``contact_id`` has (``present``) or no longer has number ``phone``."""

    account_id: Id
    phone: str = Field(pattern=E164_PATTERN)
    contact_id: Id
    present: bool

    @property
    def key(self) -> str:
        return f"{self.account_id}:{self.phone}"


class WideConsentCommand(_Internal):
    """Opt a contact out of (or back in to) all SMS, because of what its number did."""

    account_id: Id
    contact_id: Id
    status: SubscriptionStatus
    source: ConsentSource
    source_id: str | None = None
    phone_masked: str | None = None
    provider_message_id: str | None = None  # evidence: the reply that asked for it

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)


class ContactReindex(_Internal):
    """Read contact ``contact_id``'s numbers again in its account's current region."""

    account_id: Id
    contact_id: Id
    region: str

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)
