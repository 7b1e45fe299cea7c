"""The SMS sender's ledger of idempotency keys: what happened to each SMS at the gateway.

Kept on a compacted topic keyed by idempotency key, so the latest entry of every key
survives; a sender rebuilds its ledger from it at start-up and never sends a finished
key again. Like status events it never carries the full number or the body.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import Event, Id
from schemas.sms import Encoding


class LedgerState(StrEnum):
    SENDING = "sending"  # written (and acknowledged) before the gateway is called
    RETRYING = "retrying"  # refused without being processed (429, 5xx, no connection)
    UNKNOWN = "unknown"  # the request left but no answer came back (timeout, reset)
    SENT = "sent"  # accepted by the gateway
    DELIVERED = "delivered"  # delivery callback
    UNDELIVERED = "undelivered"  # delivery callback
    FAILED = "failed"  # refused for good, retries exhausted, or ambiguous and unresolved
    SKIPPED = "skipped"  # never sent: the number opted out after the request was queued


# States after which the gateway is never called again for the key.
SETTLED_STATES = frozenset(
    {
        LedgerState.SENT,
        LedgerState.DELIVERED,
        LedgerState.UNDELIVERED,
        LedgerState.FAILED,
        LedgerState.SKIPPED,
    }
)


class SmsLedgerEntry(Event):
    """The latest state of one idempotency key, with the ids a status event needs."""

    event_type: Literal["sms.ledger"] = "sms.ledger"
    idempotency_key: str = Field(min_length=8, max_length=255)
    state: LedgerState
    account_id: Id
    contact_id: Id
    workflow_id: str | None = None
    enrollment_id: str | None = None
    message_id: str | None = None
    to_masked: str | None = None
    segments: int | None = None
    encoding: Encoding | None = None
    # The gateway API the key was sent through: only "http" de-duplicates a resend.
    api: Literal["http", "twilio"] = "http"
    attempts: int = Field(default=0, ge=0)
    provider_message_id: str | None = None
    error_code: str | None = None
    reason: str | None = None
    # The request's tracked links (code -> URL): the sender's redirects are rebuilt from here.
    links: dict[str, str] | None = None
    # When the gateway was first called for the key: a resend through an API that
    # de-duplicates is safe only within the gateway's idempotency window from then.
    first_attempt_at: AwareDatetime | None = None
    # A ``sending`` entry is a claim: the sender instance that wrote it and that instance's
    # assignment generation of the partition. Another instance waits for a claim it does
    # not own to be settled or released; it never sends over it.
    writer: str | None = None
    generation: int | None = None

    @property
    def key(self) -> str:
        return self.idempotency_key
