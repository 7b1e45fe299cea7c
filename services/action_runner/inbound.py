"""Replies from phones (STOP, START, HELP) and gateway opt-outs, for one number.

Pure: the number's index entry and the account in; what to emit and the new entry out.
A STOP or START first records the number's state on ``opt-outs`` (what the send gate and
the sender check), then asks for an audit record on each contact that holds the number.
Confirmations and HELP answers are non-marketing replies and bypass the consent gate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from schemas.definitions import Account
from schemas.envelope import E164_PATTERN
from schemas.sms import (
    InboundSms,
    NumberOptOut,
    OptOutSource,
    ProviderOptOut,
    SmsRequest,
    SmsStatus,
    SmsStatusEvent,
)
from schemas.subscriptions import ConsentSource, SubscriptionStatus
from schemas.topics import OPT_OUTS, SMS_REQUESTS, SMS_STATUS
from services.action_runner import keywords
from services.action_runner.emissions import Effects
from services.action_runner.internal import CONSENT_COMMANDS, WideConsentCommand
from services.action_runner.keywords import Keyword
from services.action_runner.phone_index import NumberEntry
from services.common.codec import DecodeError, decode
from services.common.idempotency import emission_id, reply_key
from services.common.masking import mask_phone
from services.common.segments import count_segments

E164_NUMBER = re.compile(E164_PATTERN)
NO_CONTACT = "unknown"  # the contact id of a reply to a number no contact has


@dataclass
class InboundHandled:
    kind: str  # stop | start | help | provider_opt_out | ignored
    effects: Effects = field(default_factory=Effects)
    entry: NumberEntry | None = None  # the number's new entry, when it changed
    contacts: int = 0


def handle_inbound(
    event: InboundSms | ProviderOptOut,
    entry: NumberEntry | None,
    account: Account | None,
    now: datetime,
) -> InboundHandled:
    entry = entry or NumberEntry()
    if isinstance(event, ProviderOptOut):
        contacts = set(entry.contacts) | ({event.contact_id} if event.contact_id else set())
        handled = InboundHandled(kind="provider_opt_out")
        _opt(
            handled,
            event,
            entry,
            sorted(contacts),
            ConsentSource.GATEWAY_ERROR,
            event.error_code,
            SubscriptionStatus.UNSUBSCRIBED,
            now,
        )
        return handled
    match = keywords.classify(event.body, account.spec if account else None)
    if match is None:
        return InboundHandled(kind="ignored")
    keyword, word = match
    handled = InboundHandled(kind=keyword.value)
    if keyword is Keyword.HELP:
        text = keywords.help_text(event.account_id, account.spec.help_text if account else None)
    elif keyword is Keyword.STOP:
        _opt(
            handled,
            event,
            entry,
            entry.contacts,
            ConsentSource.INBOUND_KEYWORD,
            word,
            SubscriptionStatus.UNSUBSCRIBED,
            now,
        )
        # No reply: the provider confirms an opt-out itself and refuses any later message to
        # the number (Twilio answers 21610), so a confirmation of ours could not be delivered.
        return handled
    else:
        _opt(
            handled,
            event,
            entry,
            entry.contacts,
            ConsentSource.INBOUND_KEYWORD,
            word,
            SubscriptionStatus.SUBSCRIBED,
            now,
        )
        text = keywords.start_confirmation(event.account_id)
    if account is not None and account.spec.sms_access:
        _reply(handled, event, entry, account, keyword, text, now)
    return handled


def inbound_id(event: InboundSms | ProviderOptOut) -> str:
    """The provider's message id survives webhook retries; the event id does not."""
    if isinstance(event, InboundSms) and event.provider_message_id:
        return event.provider_message_id
    return event.event_id


def _phone(event: InboundSms | ProviderOptOut) -> str:
    return event.phone if isinstance(event, ProviderOptOut) else event.from_


def _evidence(event: InboundSms | ProviderOptOut) -> str | None:
    return event.provider_message_id if isinstance(event, InboundSms) else None


def _opt(
    handled: InboundHandled,
    event: InboundSms | ProviderOptOut,
    entry: NumberEntry,
    contacts: list[str],
    source: ConsentSource,
    source_id: str,
    status: SubscriptionStatus,
    now: datetime,
) -> None:
    opted_out = status is SubscriptionStatus.UNSUBSCRIBED
    handled.entry = entry.model_copy(
        update={
            "contacts": sorted(set(entry.contacts) | set(contacts)),
            "opted_out": opted_out,
            "source": source if opted_out else None,
            "source_id": source_id if opted_out else None,
            "provider_message_id": _evidence(event) if opted_out else None,
            "at": now,
        }
    )
    handled.contacts = len(contacts)
    phone = _phone(event)
    handled.effects.emit(
        OPT_OUTS,
        NumberOptOut(
            event_id=emission_id(inbound_id(event), "opt-out", status.value),
            occurred_at=now,
            account_id=event.account_id,
            number=phone,
            opted_out=opted_out,
            keyword=source_id if source is ConsentSource.INBOUND_KEYWORD else None,
            source=(
                OptOutSource.PROVIDER
                if source is ConsentSource.GATEWAY_ERROR
                else OptOutSource.REPLY
            ),
            provider_message_id=_evidence(event),
        ),
    )
    masked = mask_phone(phone)
    for contact_id in contacts:
        command = WideConsentCommand(
            event_id=emission_id(inbound_id(event), contact_id, status.value),
            account_id=event.account_id,
            contact_id=contact_id,
            status=status,
            source=source,
            source_id=source_id,
            phone_masked=masked,
            provider_message_id=_evidence(event),
        )
        handled.effects.emit(CONSENT_COMMANDS, command)


def _reply(
    handled: InboundHandled,
    event: InboundSms,
    entry: NumberEntry,
    account: Account,
    keyword: Keyword,
    text: str,
    now: datetime,
) -> None:
    key = reply_key(event.account_id, inbound_id(event), keyword.value)
    contact_id = entry.contacts[0] if entry.contacts else NO_CONTACT
    count = count_segments(text)
    sender = event.to if E164_NUMBER.match(event.to) else account.spec.sender
    masked = mask_phone(event.from_)
    message_id = f"keyword-{keyword.value}"
    handled.effects.emit(
        SMS_REQUESTS,
        SmsRequest.model_validate(
            {
                "event_id": emission_id(key, "request"),
                "occurred_at": now,
                "idempotency_key": key,
                "account_id": event.account_id,
                "contact_id": contact_id,
                "message_id": message_id,
                "to": event.from_,
                "from": sender,
                "body": text,
                "encoding": count.encoding,
                "segments": count.segments,
                "to_masked": masked,
            }
        ),
    )
    handled.effects.emit(
        SMS_STATUS,
        SmsStatusEvent(
            event_id=emission_id(key, "status"),
            occurred_at=now,
            idempotency_key=key,
            account_id=event.account_id,
            contact_id=contact_id,
            message_id=message_id,
            status=SmsStatus.QUEUED,
            to_masked=masked,
            segments=count.segments,
            encoding=count.encoding,
        ),
    )


def decode_inbound(value: bytes | None) -> InboundSms | ProviderOptOut:
    """``sms-inbound`` carries two event types: dispatch on ``event_type``."""
    try:
        event_type = json.loads(value or b"null").get("event_type")
    except (ValueError, AttributeError) as exc:
        raise DecodeError(f"malformed JSON: {exc}") from exc
    if event_type == "sms.provider_opt_out":
        return decode(ProviderOptOut, value)
    if event_type == "sms.inbound":
        return decode(InboundSms, value)
    raise DecodeError(f"event_type: unknown {event_type!r} on sms-inbound")
