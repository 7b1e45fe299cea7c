"""The enroller's record handler: contact changes and action results, decided per contact.

Both topics are keyed by contact and co-partitioned; the pipeline gives both handlers of a
partition number the same state and lock, so every record of a contact is decided against
the state the one before it left.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord

from schemas.contacts import ContactChange
from services.common.codec import DecodeError
from services.common.records import Batch, Handled, Handler

from .contacts import Contacts, handled
from .engine import InvalidRecord
from .inbound import Record, decode_inbound
from .metrics import short


class EnrollContacts(Handler):
    def __init__(self, contacts: Contacts, topic: str, event_type: str) -> None:
        self.contacts = contacts
        self.topic = topic
        self.expected = {topic: event_type}
        self.name = short(topic)  # names its metrics

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Record:
        try:
            item = decode_inbound(record.topic, record.value, self.expected)
        except InvalidRecord as exc:
            raise DecodeError(exc.reason) from exc
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        if key != item.key:
            raise DecodeError(f"record key {key!r} is not the contact key {item.key!r}")
        return item

    async def prepare(self, partition: int, items: Sequence[Any]) -> float:
        # Nothing is decided against a partial catalog: the records wait, uncommitted.
        await self.contacts.definitions.loaded.wait()
        return time.time()

    def decide(
        self, item: Record, record: ConsumerRecord[bytes, bytes], batch: Batch, now: float
    ) -> Handled:
        engine = self.contacts.engine(batch, item.key, now)
        if isinstance(item, ContactChange):
            engine.apply_change(item)
            event = "change_applied"
        else:
            engine.apply_result(item)
            event = "result_applied"
        self.contacts.keep(batch, engine)
        return handled(event, engine, key=item.key)
