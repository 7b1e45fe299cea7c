"""Ledger entries and the status events they announce. Pure.

A status event's ``event_id`` is derived from (key, status, provider id), so announcing the
same outcome again (after a crash between the ledger write and the status write, or when a
request is replayed) repeats the same event rather than adding a new one.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.ledger import LedgerState, SmsLedgerEntry
from schemas.sms import ProviderOptOut, SmsRequest, SmsStatus, SmsStatusEvent

_NAMESPACE = uuid.UUID("6f1c7a52-5d0e-4a53-9d38-0c1f4e2b7a10")
# Event ids must be unique, not secret: a seeded generator saves a system call per event.
_ids = random.Random()


def fresh_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


ANNOUNCED = {
    LedgerState.SENT: SmsStatus.SENT,
    LedgerState.DELIVERED: SmsStatus.DELIVERED,
    LedgerState.UNDELIVERED: SmsStatus.UNDELIVERED,
    LedgerState.FAILED: SmsStatus.FAILED,
    LedgerState.SKIPPED: SmsStatus.SKIPPED,
}


def new_entry(
    request: SmsRequest, state: LedgerState, *, api: str, attempts: int, **fields: Any
) -> SmsLedgerEntry:
    return SmsLedgerEntry(
        event_id=fresh_id(),
        idempotency_key=request.idempotency_key,
        state=state,
        account_id=request.account_id,
        contact_id=request.contact_id,
        workflow_id=request.workflow_id,
        enrollment_id=request.enrollment_id,
        message_id=request.message_id,
        to_masked=request.to_masked,
        segments=request.segments,
        encoding=request.encoding,
        links=request.links,
        api=api,
        attempts=attempts,
        **fields,
    )


def advance(entry: SmsLedgerEntry, state: LedgerState, **fields: Any) -> SmsLedgerEntry:
    """The next entry of the same key (a fresh ``event_id`` and time). ``fields`` come from
    this package, so the copy skips validation."""
    changes = {"state": state, "event_id": fresh_id(), "occurred_at": datetime.now(UTC)}
    return entry.model_copy(update=changes | fields)


def status_event(entry: SmsLedgerEntry, status: SmsStatus | None = None) -> SmsStatusEvent:
    status = status or ANNOUNCED[entry.state]
    name = f"{entry.idempotency_key}|{status.value}|{entry.provider_message_id or ''}"
    return SmsStatusEvent(
        event_id=uuid.uuid5(_NAMESPACE, name).hex,
        idempotency_key=entry.idempotency_key,
        account_id=entry.account_id,
        contact_id=entry.contact_id,
        workflow_id=entry.workflow_id,
        enrollment_id=entry.enrollment_id,
        message_id=entry.message_id,
        status=status,
        reason=entry.reason if status is not SmsStatus.SENT else None,
        to_masked=entry.to_masked,
        segments=entry.segments,
        encoding=entry.encoding,
        attempts=entry.attempts,
        provider_message_id=entry.provider_message_id,
        error_code=entry.error_code if status is not SmsStatus.SENT else None,
    )


def transition_events(old: SmsLedgerEntry | None, new: SmsLedgerEntry) -> list[SmsStatusEvent]:
    """Status events for the move ``old`` -> ``new``: a delivery report that arrives before
    the gateway's answer also announces ``sent`` first, so every delivered SMS was sent."""
    if new.state not in ANNOUNCED:
        return []
    events = []
    was_sent = old is not None and old.state is LedgerState.SENT
    if new.state in (LedgerState.DELIVERED, LedgerState.UNDELIVERED) and not was_sent:
        events.append(status_event(new, SmsStatus.SENT))
    events.append(status_event(new))
    return events


def opt_out_event(entry: SmsLedgerEntry, request: SmsRequest) -> ProviderOptOut:
    """The provider refused the number as unsubscribed: tell the action runner."""
    name = f"{entry.idempotency_key}|opt-out"
    return ProviderOptOut(
        event_id=uuid.uuid5(_NAMESPACE, name).hex,
        account_id=request.account_id,
        phone=request.to,
        contact_id=request.contact_id,
        error_code=entry.error_code or "21610",
        idempotency_key=entry.idempotency_key,
    )


def deferred_event(
    entry: SmsLedgerEntry, reason: str, until: datetime, episode: int
) -> SmsStatusEvent:
    """The SMS waits (the gateway is away, or asked for a long pause): not an end state.
    ``episode`` counts the waits of one key, so each wait is its own event."""
    event = status_event(entry, SmsStatus.DEFERRED)
    name = f"{entry.idempotency_key}|deferred|{reason}|{episode}"
    return event.model_copy(
        update={
            "event_id": uuid.uuid5(_NAMESPACE, name).hex,
            "reason": reason,
            "error_code": None,
            "deferred_until": until,
        }
    )
