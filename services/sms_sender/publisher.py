"""Writes to Kafka, awaited until the broker acknowledged them.

``KafkaPublisher`` writes through the loop's aiokafka producer; ``MemoryPublisher`` keeps
what would have been written, for unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.dead_letters import DeadLetter
from schemas.ledger import SmsLedgerEntry
from schemas.sms import InboundSms, NumberOptOut, ProviderOptOut, SmsLinkClicked, SmsStatusEvent
from schemas.topics import (
    DEAD_LETTERS,
    OPT_OUTS,
    SMS_CLICKS,
    SMS_INBOUND,
    SMS_LEDGER,
    SMS_STATUS,
)
from services.common.codec import encode, encode_key
from services.common.logging import get_logger
from services.common.settings import KafkaSettings

log = get_logger("sms_sender")

MAX_WRITE_BACKOFF_S = 5.0

# Header naming the process that wrote a ledger entry, so it can skip its own when tailing.
WRITER_HEADER = "smsflow-writer"


class Publisher(Protocol):
    async def ledger(self, entry: SmsLedgerEntry, partition: int) -> None: ...

    async def statuses(self, events: list[SmsStatusEvent]) -> None: ...

    async def inbound(self, event: InboundSms | ProviderOptOut) -> None: ...

    async def dead_letter(self, letter: DeadLetter) -> None: ...

    async def click(self, event: SmsLinkClicked) -> None: ...
    async def opt_outs(self, events: list[NumberOptOut]) -> None: ...


class KafkaPublisher:
    """Writes through an aiokafka producer running on the same loop."""

    def __init__(self, producer: AIOKafkaProducer, settings: KafkaSettings, writer: str) -> None:
        self.producer = producer
        self.writer = writer.encode()
        self.topics = {
            spec.name: settings.topic(spec)
            for spec in (SMS_LEDGER, SMS_STATUS, SMS_INBOUND, DEAD_LETTERS, SMS_CLICKS, OPT_OUTS)
        }

    async def ledger(self, entry: SmsLedgerEntry, partition: int) -> None:
        value, headers = encode(entry), [(WRITER_HEADER, self.writer)]

        async def write() -> None:
            await (await self._send(SMS_LEDGER.name, entry.key, value, partition, headers))

        await until_written(write, SMS_LEDGER.name)

    async def statuses(self, events: list[SmsStatusEvent]) -> None:
        await until_written(lambda: self._send_all(SMS_STATUS.name, events), SMS_STATUS.name)

    async def inbound(self, event: InboundSms | ProviderOptOut) -> None:
        # Not retried here: the webhook that calls it answers 503 so the provider retries.
        await (await self._send(SMS_INBOUND.name, event.key, encode(event)))

    async def dead_letter(self, letter: DeadLetter) -> None:
        async def write() -> None:
            await (await self._send(DEAD_LETTERS.name, letter.key or "", encode(letter)))

        await until_written(write, DEAD_LETTERS.name)

    async def click(self, event: SmsLinkClicked) -> None:
        await (await self._send(SMS_CLICKS.name, event.key, encode(event)))

    async def opt_outs(self, events: list[NumberOptOut]) -> None:
        await self._send_all(OPT_OUTS.name, events)

    async def _send_all(
        self, topic: str, events: list[SmsStatusEvent] | list[NumberOptOut]
    ) -> None:
        """Append every event, then await the acknowledgements together."""
        acks = [await self._send(topic, e.key, encode(e)) for e in events]
        for ack in acks:
            await ack

    async def _send(
        self,
        topic: str,
        key: str,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Append the record (in call order: no suspension while metadata is known and the
        buffer has room) and return the future of its acknowledgement."""
        ack: asyncio.Future[Any] = await self.producer.send(
            self.topics[topic],
            key=encode_key(key),
            value=value,
            partition=partition,
            headers=headers or [],
        )
        return ack


async def until_written(write: Callable[[], Awaitable[None]], topic: str) -> None:
    """Run ``write`` until the broker acknowledges it: while the broker is away (a restart,
    a network cut) the request waits, and the sender neither fails it nor exits. A write
    repeated after a lost acknowledgement is harmless: ledger entries only move forward,
    and a repeated status event keeps its ``event_id``."""
    delay = 0.2
    while True:
        try:
            await write()
            return
        except KafkaError as exc:
            log.warning("kafka_write_waiting", topic=topic, error=repr(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_WRITE_BACKOFF_S)


class MemoryPublisher:
    """Everything published, in order, as (topic name, model)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Any]] = []

    async def ledger(self, entry: SmsLedgerEntry, partition: int) -> None:
        self.records.append((SMS_LEDGER.name, entry))

    async def statuses(self, events: list[SmsStatusEvent]) -> None:
        self.records += [(SMS_STATUS.name, e) for e in events]

    async def inbound(self, event: InboundSms | ProviderOptOut) -> None:
        self.records.append((SMS_INBOUND.name, event))

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.records.append((DEAD_LETTERS.name, letter))

    async def click(self, event: SmsLinkClicked) -> None:
        self.records.append((SMS_CLICKS.name, event))

    async def opt_outs(self, events: list[NumberOptOut]) -> None:
        self.records += [(OPT_OUTS.name, e) for e in events]

    def of(self, topic: str) -> list[Any]:
        return [model for name, model in self.records if name == topic]
