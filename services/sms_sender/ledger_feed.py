"""Tails a whole compacted topic on the loop into a local view: ``sms-ledger`` (rebuilds
the ledger at start-up and keeps it current with what other senders write; own writes are
skipped by header) and ``opt-outs`` (the numbers that may no longer be sent to).

``barrier(partitions)`` returns once the feed has applied those partitions up to their end
offsets as of the call: after it, every record written before is in the view.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.envelope import Event
from schemas.ledger import SmsLedgerEntry
from schemas.sms import NumberOptOut
from schemas.topics import OPT_OUTS, SMS_LEDGER, TopicSpec
from services.common.codec import DecodeError, decode
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.sms_sender.async_kafka import make_reader
from services.sms_sender.publisher import WRITER_HEADER

log = get_logger("sms_sender")

M = TypeVar("M", bound=Event)


class TopicFeed(Generic[M]):
    """Reads ``spec``'s records as ``model`` and hands them, with their partition, to
    ``apply`` in batches; records carrying ``writer`` in their writer header are skipped."""

    def __init__(
        self,
        settings: KafkaSettings,
        spec: TopicSpec,
        model: type[M],
        apply: Callable[[list[tuple[M, int]]], None],
        writer: str | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(spec)
        self.model = model
        self.writer = writer.encode() if writer else None
        self.apply = apply
        self.read = 0
        self.partitions: list[TopicPartition] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        # Told when the tail dies: without it the ledger goes stale, so the service stops.
        self.on_crash: Callable[[BaseException], None] | None = None

    async def start(self, partitions: set[int]) -> None:
        """Read ``partitions`` of the ledger (all of them) from the beginning."""
        consumer = self._consumer = make_reader(self.settings)
        await consumer.start()
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self.partitions)
        await consumer.seek_to_beginning(*self.partitions)
        self._task = asyncio.get_running_loop().create_task(self._tail())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def barrier(self, partitions: set[int] | None = None) -> None:
        """Return once ``partitions`` (None: all) are applied up to their current end."""
        assert self._consumer is not None, "start() first"
        chosen = [tp for tp in self.partitions if partitions is None or tp.partition in partitions]
        ends = await self._consumer.end_offsets(chosen)
        async with self._progress:
            while not await self._reached(ends):
                if self._task is not None and self._task.done():
                    raise RuntimeError("the ledger feed stopped")
                await self._progress.wait()

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def _tail(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
                entries: list[tuple[M, int]] = []
                for tp, records in batches.items():
                    for record in records:
                        self.read += 1
                        if self.writer and (WRITER_HEADER, self.writer) in (record.headers or ()):
                            continue  # written by this process: already applied
                        if record.value is None:
                            continue  # a tombstone: nothing to apply
                        try:
                            entries.append((decode(self.model, record.value), tp.partition))
                        except DecodeError as exc:
                            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                            log.warning("feed_record_rejected", where=where, reason=exc.reason)
                if entries:
                    self.apply(entries)
                async with self._progress:
                    self._progress.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("feed_crashed", topic=self.topic, error=repr(exc))
            async with self._progress:
                self._progress.notify_all()
            if self.on_crash is not None:
                self.on_crash(exc)
            raise


def ledger_feed(
    settings: KafkaSettings, writer: str, apply: Callable[[list[tuple[SmsLedgerEntry, int]]], None]
) -> TopicFeed[SmsLedgerEntry]:
    return TopicFeed(settings, SMS_LEDGER, SmsLedgerEntry, apply, writer)


def opt_out_feed(
    settings: KafkaSettings, apply: Callable[[list[tuple[NumberOptOut, int]]], None]
) -> TopicFeed[NumberOptOut]:
    return TopicFeed(settings, OPT_OUTS, NumberOptOut, apply)
