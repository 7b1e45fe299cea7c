"""A local view of the compacted ``opt-outs`` topic: which numbers opted out, per account.

Tails every partition from the beginning on the event loop (no consumer group), keeping the
latest ``NumberOptOut`` per ``{account_id}:{E.164}``. ``caught_up()`` returns once every
record written before the call is in the view, so a decision taken after it sees every
opt-out the broker had acknowledged by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from schemas.sms import NumberOptOut, number_key
from services.common.codec import DecodeError, decode
from services.common.logging import get_logger

log = get_logger(__name__)


class NumberOptOuts:
    def __init__(self, topic: str, client_options: Mapping[str, Any]) -> None:
        self.topic = topic
        self._client_options = dict(client_options)
        self._latest: dict[str, NumberOptOut] = {}
        # Keys whose latest record could not be read: treated as opted out (fail closed).
        self._unreadable: set[str] = set()
        self._consumer: AIOKafkaConsumer | None = None
        # End offsets come from a client of their own: on the tailing one they would queue
        # behind its long-polling fetch (up to fetch_max_wait_ms per send).
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        self._progress = asyncio.Condition()
        self.loaded = asyncio.Event()  # set once the view has read to the end once

    def get(self, account_id: str, number: str) -> NumberOptOut | None:
        return self._latest.get(number_key(account_id, number))

    def opted_out(self, account_id: str, number: str) -> bool:
        key = number_key(account_id, number)
        record = self._latest.get(key)
        return key in self._unreadable or (record is not None and record.opted_out)

    def apply(self, key: str | None, value: bytes | None) -> None:
        """One record of the topic, in offset order (a tombstone forgets the number)."""
        if key is None:
            return
        self._unreadable.discard(key)
        if value is None:
            self._latest.pop(key, None)
            return
        try:
            self._latest[key] = decode(NumberOptOut, value)
        except DecodeError:
            self._unreadable.add(key)
            raise

    async def start(self, partitions: int) -> None:
        """Read all ``partitions`` of the topic from the beginning, then follow it."""
        consumer = self._consumer = AIOKafkaConsumer(
            **self._client_options, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        self._offsets = AIOKafkaConsumer(**self._client_options, enable_auto_commit=False)
        await self._offsets.start()
        self._partitions = [TopicPartition(self.topic, p) for p in range(partitions)]
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.get_running_loop().create_task(self._tail())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in (self._consumer, self._offsets):
            if client is not None:
                await client.stop()
        self._consumer = self._offsets = None

    async def caught_up(self, timeout_s: float) -> bool:
        """True once everything on the topic as of now is in the view; False past the timeout
        (or when the view is not running): then the caller cannot prove a number is clear."""
        consumer, offsets = self._consumer, self._offsets
        if consumer is None or offsets is None or self._task is None or self._task.done():
            return False
        try:
            async with asyncio.timeout(timeout_s):
                ends = await offsets.end_offsets(self._partitions)
                async with self._progress:
                    while not await self._reached(consumer, ends):
                        if self._task.done():
                            return False
                        await self._progress.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _tail(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the view is stale from now on: caught_up() says so
            log.error("opt_out_view_crashed", error=f"{type(exc).__name__}: {exc}")
            async with self._progress:
                self._progress.notify_all()
            raise

    async def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    key = record.key.decode() if record.key else None
                    try:
                        self.apply(key, record.value)
                    except DecodeError as exc:
                        where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                        log.warning("opt_out_rejected", where=where, reason=exc.reason)
            if not self.loaded.is_set() and self._offsets is not None:
                ends = await self._offsets.end_offsets(self._partitions)
                if await self._reached(consumer, ends):
                    self.loaded.set()
            async with self._progress:
                self._progress.notify_all()


@functools.lru_cache(maxsize=65536)  # murmur2 is pure Python; keys repeat (a contact's outputs)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as every client here) gives a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
