"""Provider message ids of the inbound replies already published, so a replayed or retried
reply publishes nothing new, also after a restart and on another sender replica.

Why a store rebuilt from the topics rather than a deterministic ``event_id`` alone: a
replayed START would still be published and acted on by every consumer that does not
de-duplicate; and rather than a local file: replicas and a rescheduled pod must see the ids
the others published. ``sms-inbound`` (and ``opt-outs``, for replies to an unknown number)
already holds every published reply with its id, so tailing them from ``window_s`` back is
the store; at most ``capacity`` ids are kept, the oldest forgotten first. What it cannot
catch (two replicas taking the same reply at once, an id forgotten, a write that timed out
but landed) is still covered: the published events carry an ``event_id`` derived from the
provider id, and the runner keys its effects on that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.topics import OPT_OUTS, SMS_INBOUND
from services.common.compacted_view import reached
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.sms_sender.async_kafka import make_reader

log = get_logger("sms_sender")

RETRY_S = 2.0


def reply_event_id(kind: str, account_id: str, provider_message_id: str) -> str:
    """The same for every delivery of one reply, so consumers can drop repeats."""
    digest = hashlib.sha256(f"{kind}\0{account_id}\0{provider_message_id}".encode())
    return digest.hexdigest()[:32]


class RecentIds:
    """The most recent ids, at least ``capacity / 2`` and at most ``capacity`` of them, the
    oldest forgotten first; ids being published are ``claimed`` so a concurrent repeat is
    told to come back. Two generations of 64-bit digests keep it small: about 80 bytes per
    id, against some 360 for an ordered dict of the strings."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 2)
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._claimed: set[str] = set()

    @staticmethod
    def _digest(provider_message_id: str) -> int:
        digest = hashlib.blake2b(provider_message_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def __contains__(self, provider_message_id: str) -> bool:
        digest = self._digest(provider_message_id)
        return digest in self._current or digest in self._previous

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add(self, provider_message_id: str) -> None:
        digest = self._digest(provider_message_id)
        self._previous.discard(digest)
        self._current.add(digest)
        if len(self._current) >= self.capacity // 2:
            self._previous, self._current = self._current, set()

    def claim(self, provider_message_id: str) -> bool:
        """False when the id is published already or being published right now."""
        if provider_message_id in self or provider_message_id in self._claimed:
            return False
        self._claimed.add(provider_message_id)
        return True

    def release(self, provider_message_id: str, published: bool) -> None:
        self._claimed.discard(provider_message_id)
        if published:
            self.add(provider_message_id)


def published_id(value: bytes | None) -> str | None:
    """The provider message id of a reply read back from ``sms-inbound`` (``InboundSms``)
    or ``opt-outs`` (``NumberOptOut``); None for other records."""
    try:
        event = json.loads(value or b"null")
    except ValueError:
        return None
    provider_id = event.get("provider_message_id") if isinstance(event, dict) else None
    return provider_id if isinstance(provider_id, str) and provider_id else None


class ReplyIdFeed:
    """Fills ``ids`` from ``sms-inbound`` and ``opt-outs`` (the last ``window_s``, at most
    ``ids.capacity`` records per partition), then keeps tailing them. ``ready`` is set once
    the rebuild reached the end offsets of the start."""

    def __init__(
        self,
        settings: KafkaSettings,
        ids: RecentIds,
        window_s: float,
        partitions_for: Callable[[str], Awaitable[set[int]]],
    ) -> None:
        self.settings = settings
        self.ids = ids
        self.window_s = window_s
        self.partitions_for = partitions_for  # the producer's: waits for the metadata
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        # The broker may be away for a while: keep trying, webhooks answer 503 meanwhile.
        while True:
            consumer = make_reader(self.settings)
            try:
                await consumer.start()
                ends = await self._seek(consumer)
                await self._tail(consumer, ends)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reply_ids_feed_failed", error=repr(exc))
            finally:
                await consumer.stop()
            await asyncio.sleep(RETRY_S)

    async def _seek(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        partitions = []
        for spec in (SMS_INBOUND, OPT_OUTS):
            topic = self.settings.topic(spec)
            known = await self.partitions_for(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(known)]
        consumer.assign(partitions)
        since_ms = int((time.time() - self.window_s) * 1000)
        by_time = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            found = by_time.get(tp)
            start = found.offset if found is not None else ends[tp]
            start = max(start, ends[tp] - self.ids.capacity, starts[tp])
            consumer.seek(tp, start)
        return dict(ends)

    async def _tail(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    provider_id = published_id(record.value)
                    if provider_id:
                        self.ids.add(provider_id)
            if not self.ready.is_set() and await reached(consumer, ends):
                self.ready.set()
                log.info("reply_ids_rebuilt", ids=len(self.ids))
