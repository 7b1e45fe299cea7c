"""Everything the topics hold about one contact, folded in topic order.

``load_history`` is the Kafka edge (it reads only the partition the contact key lives on
in each contact-scoped topic, plus the definitions and the contact's numbers' opt-outs);
``ContactHistory`` itself is pure, so ``explain`` and ``consent show`` are testable
without a broker.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from schemas.actions import ActionResult
from schemas.contacts import ContactChange, PropertyValue
from schemas.dead_letters import DeadLetter
from schemas.definitions import DefinitionApplied
from schemas.enrollment import EnrollmentEvent
from schemas.envelope import Event, contact_key
from schemas.sms import NumberOptOut, SmsStatusEvent, number_key
from schemas.subscriptions import SubscriptionChange
from schemas.topics import (
    ACTION_RESULTS,
    CONTACT_CHANGES,
    DEAD_LETTERS,
    DEFINITIONS,
    ENROLLMENT_EVENTS,
    OPT_OUTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
)
from services.common.catalog import Catalog
from services.common.codec import DecodeError
from services.common.masking import mask_phone
from services.common.phones import normalize
from services.common.settings import KafkaSettings
from services.control.topic_reader import Record, decode_event, read_topics

PHONE_PROPERTIES = ("mobilephone", "phone")


@dataclass
class ContactHistory:
    account_id: str
    contact_id: str
    catalog: Catalog = field(default_factory=Catalog)
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    deleted: bool = False
    changes: list[ContactChange] = field(default_factory=list)
    # Every number the contact has held (raw values), so opt-outs of old numbers show too.
    raw_numbers: list[str] = field(default_factory=list)
    enrollments: list[EnrollmentEvent] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    subscriptions: list[SubscriptionChange] = field(default_factory=list)
    statuses: list[SmsStatusEvent] = field(default_factory=list)
    opt_outs: list[NumberOptOut] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)  # where, for records we skipped

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)

    def add(self, event: Event) -> None:
        """One event of this contact, in topic order."""
        if isinstance(event, ContactChange):
            self._change(event)
        elif isinstance(event, EnrollmentEvent):
            self.enrollments.append(event)
        elif isinstance(event, ActionResult):
            self.results.append(event)
        elif isinstance(event, SubscriptionChange):
            self.subscriptions.append(event)
        elif isinstance(event, SmsStatusEvent):
            self.statuses.append(event)
        elif isinstance(event, NumberOptOut):
            self.opt_outs.append(event)
        elif isinstance(event, DeadLetter):
            self.dead_letters.append(event)

    def _change(self, change: ContactChange) -> None:
        if any(c.event_id == change.event_id for c in self.changes):
            return  # at-least-once delivery: a repeated event changes nothing
        self.changes.append(change)
        if change.deleted:
            self.properties, self.deleted = {}, True
            return
        self.deleted = False
        for name, value in change.properties.items():
            if value is None:
                self.properties.pop(name, None)
            else:
                self.properties[name] = value
            raw = "" if value is None else str(value)
            if name in PHONE_PROPERTIES and raw.strip() and raw not in self.raw_numbers:
                self.raw_numbers.append(raw)

    def numbers(self) -> list[str]:
        """The E.164 form of every number the contact has held (read in the account's region)."""
        account = self.catalog.account(self.account_id)
        region = account.spec.default_region if account else None
        found = [normalize(raw, region) for raw in self.raw_numbers]
        return list(dict.fromkeys(n for n in found if n))


def load_history(
    settings: KafkaSettings, account_id: str, contact_id: str, number: str | None = None
) -> ContactHistory:
    """Reads the topics; ``number`` adds that number's opt-outs (``consent show --number``)."""
    history = ContactHistory(account_id, contact_id)
    for record in read_topics(settings, [settings.topic(DEFINITIONS)]):
        _definition(history.catalog, record)
    scoped = [
        CONTACT_CHANGES,
        ENROLLMENT_EVENTS,
        ACTION_RESULTS,
        SUBSCRIPTION_CHANGES,
        SMS_STATUS,
        DEAD_LETTERS,
    ]
    if contact_id:
        topics = [settings.topic(spec) for spec in scoped]
        records = read_topics(settings, topics, key=history.key)
        records.sort(key=lambda r: (r.timestamp_ms, r.topic, r.offset))
        for record in records:
            _add(history, record)
    elif number:  # no contact: the subscription changes that name this number
        masked = mask_phone(number)
        for record in read_topics(settings, [settings.topic(SUBSCRIPTION_CHANGES)]):
            try:
                event = decode_event(record.value)
            except DecodeError:
                continue
            if (
                isinstance(event, SubscriptionChange)
                and event.account_id == account_id
                and event.phone_masked == masked
            ):
                history.add(event)
    numbers = history.numbers() + ([number] if number else [])
    for e164 in dict.fromkeys(numbers):
        key = number_key(account_id, e164)
        for record in read_topics(settings, [settings.topic(OPT_OUTS)], key=key):
            _add(history, record)
    return history


def _add(history: ContactHistory, record: Record) -> None:
    try:
        history.add(decode_event(record.value))
    except DecodeError:
        history.undecodable.append(record.where)


def _definition(catalog: Catalog, record: Record) -> None:
    if record.value is None:
        if record.key:
            with contextlib.suppress(ValueError):  # not a definition key: nothing to remove
                catalog.remove(record.key)
        return
    try:
        event = decode_event(record.value)
    except DecodeError:
        return
    if isinstance(event, DefinitionApplied):
        catalog.apply(event)
