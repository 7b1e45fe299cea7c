"""The number -> contacts index that inbound replies need, and the per-number opt-out.

Two halves, one per keying: ``ContactNumbers`` (contact-keyed) remembers each contact's
``mobilephone``/``phone`` so a partial update can tell which numbers it gained and lost;
``NumberEntry`` (number-keyed) lists the contacts that have a number and whether the
number opted out. A contact that later gains an opted-out number is opted out too.

National formats are read in the account's ``default_region``; each contact remembers the
region its numbers were read in, so they are read again when the account arrives (a
contact may come first) or its region changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas.contacts import ContactChange, PropertyValue
from schemas.subscriptions import ConsentSource, SubscriptionStatus
from services.action_runner.internal import ContactReindex, PhoneIndexUpdate, WideConsentCommand
from services.common.idempotency import emission_id
from services.common.masking import mask_phone

PHONE_PROPERTIES = ("mobilephone", "phone")

Normalizer = Callable[[PropertyValue], str | None]


class ContactNumbers(BaseModel):
    model_config = ConfigDict(frozen=True)

    raw: dict[str, PropertyValue] = {}
    numbers: list[str] = []
    region: str | None = None  # the account's default_region the numbers were read in


class NumberEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    contacts: list[str] = []
    opted_out: bool = False
    source: ConsentSource | None = None
    source_id: str | None = None
    provider_message_id: str | None = None  # evidence: the reply that opted it out
    at: datetime | None = None


def touches_numbers(change: ContactChange) -> bool:
    return change.deleted or any(p in change.properties for p in PHONE_PROPERTIES)


def needs_reindex(key: str, known: ContactNumbers, regions: Mapping[str, str]) -> bool:
    """Whether the contact's numbers were read in another region than its account's now."""
    account_id = key.split(":", 1)[0]
    return bool(known.raw) and account_id in regions and known.region != regions[account_id]


def reindex_commands(
    stored: Iterable[tuple[str, Any]], regions: Mapping[str, str], changed: set[str]
) -> list[ContactReindex]:
    """A command per stored contact (``account:contact`` -> ContactNumbers as stored) of an
    account in ``changed`` whose numbers were read in another region than its account's."""
    commands = []
    for key, value in stored:
        account_id, contact_id = key.split(":", 1)
        if account_id in changed and needs_reindex(
            key, ContactNumbers.model_validate(value), regions
        ):
            region = regions[account_id]
            commands.append(
                ContactReindex(
                    event_id=emission_id(key, region, "reindex"),
                    account_id=account_id,
                    contact_id=contact_id,
                    region=region,
                )
            )
    return commands


def diff_numbers(
    known: ContactNumbers | None,
    change: ContactChange,
    normalize: Normalizer,
    region: str | None = None,
) -> tuple[ContactNumbers, list[PhoneIndexUpdate]]:
    """The contact's numbers after ``change`` (every number read again, in ``region``
    through ``normalize``) and the index updates that follow from it."""
    known = known or ContactNumbers()
    if change.deleted:
        after = ContactNumbers()
    else:
        raw = dict(known.raw)
        raw.update({p: change.properties[p] for p in PHONE_PROPERTIES if p in change.properties})
        numbers = sorted({n for n in map(normalize, raw.values()) if n is not None})
        after = ContactNumbers(raw=raw, numbers=numbers, region=region)
    before = set(known.numbers)
    updates = [
        PhoneIndexUpdate(
            event_id=emission_id(change.event_id, phone, present),
            account_id=change.account_id,
            phone=phone,
            contact_id=change.contact_id,
            present=present,
        )
        for phone, present in [(n, False) for n in sorted(before - set(after.numbers))]
        + [(n, True) for n in sorted(set(after.numbers) - before)]
    ]
    return after, updates


def apply_update(
    entry: NumberEntry | None, update: PhoneIndexUpdate
) -> tuple[NumberEntry, WideConsentCommand | None]:
    """The number's entry after ``update``; a contact joining an opted-out number is opted
    out as well (the number's opt-out outlives the contacts that had it)."""
    entry = entry or NumberEntry()
    contacts = set(entry.contacts)
    joined = update.present and update.contact_id not in contacts
    if update.present:
        contacts.add(update.contact_id)
    else:
        contacts.discard(update.contact_id)
    after = entry.model_copy(update={"contacts": sorted(contacts)})
    if not (joined and entry.opted_out and entry.source is not None):
        return after, None
    return after, WideConsentCommand(
        event_id=emission_id(update.event_id, "inherit-opt-out"),
        account_id=update.account_id,
        contact_id=update.contact_id,
        status=SubscriptionStatus.UNSUBSCRIBED,
        source=entry.source,
        source_id=entry.source_id,
        phone_masked=mask_phone(update.phone),
        provider_message_id=entry.provider_message_id,
    )
