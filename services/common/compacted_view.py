"""A whole compacted topic tailed into a local view on the event loop.

Every partition asked for is assigned (no consumer group) and read from the beginning; each
record is decoded as a pydantic model and handed, in offset order, to ``apply`` in batches.
``barrier()`` / ``caught_up()`` return once the view holds every record the topic had when
they were called: a decision taken after them sees everything the broker had acknowledged.
Waiters are woken by the tail's progress, not by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from services.common.codec import DecodeError, decode, decode_key
from services.common.logging import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

RETRY_S = 1.0  # between two fetches while the broker is away (``ride_out_kafka_errors``)

# No group, nothing committed: the view is rebuilt from the beginning at every start.
# read_committed on both clients, so the end offsets waited for are ones the tail can reach.
READER_OPTIONS: dict[str, Any] = {
    "group_id": None,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "isolation_level": "read_committed",
}


@dataclass(frozen=True, slots=True)
class Change(Generic[M]):
    """One record of the topic. ``value`` is None for a tombstone and for a record that
    could not be decoded (``unreadable``; already logged): a view decides what that means."""

    partition: int
    key: str | None
    value: M | None
    unreadable: bool = False


class ViewStopped(RuntimeError):
    """The tail is not running (not started, stopped or crashed): the view is stale."""


def changes(
    batches: Mapping[TopicPartition, Iterable[Any]],
    model: type[M],
    skip_header: tuple[str, bytes] | None = None,
) -> list[Change[M]]:
    """The records of one fetch as changes; those carrying ``skip_header`` are left out."""
    out: list[Change[M]] = []
    for tp, records in batches.items():
        for record in records:
            if skip_header is not None and skip_header in (record.headers or ()):
                continue
            key = decode_key(record.key)
            if record.value is None:
                out.append(Change(tp.partition, key, None))
                continue
            try:
                out.append(Change(tp.partition, key, decode(model, record.value)))
            except DecodeError as exc:
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                log.warning("record_rejected", where=where, reason=exc.reason)
                out.append(Change(tp.partition, key, None, unreadable=True))
    return out


class CompactedView(Generic[M]):
    """Tails ``topic`` as ``model`` into ``apply``. ``skip_header`` (name, value): records
    carrying it are not applied (a process's own writes, applied when written). ``loaded``
    is set once the view has read up to the end offsets the topic had at ``start()``.
    ``ride_out_kafka_errors``: a Kafka error while tailing is logged and the tail carries on
    from its position (otherwise it ends the view, as any other error does)."""

    def __init__(
        self,
        topic: str,
        client_options: Mapping[str, Any],
        model: type[M],
        apply: Callable[[list[Change[M]]], None],
        *,
        skip_header: tuple[str, bytes] | None = None,
        make_client: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
        ride_out_kafka_errors: bool = False,
    ) -> None:
        self.topic = topic
        self.ride_out_kafka_errors = ride_out_kafka_errors
        self.model = model
        self.apply = apply
        self.skip_header = skip_header
        self._options = {**client_options, **READER_OPTIONS}
        self._make_client = make_client
        self.partitions: list[TopicPartition] = []
        self.read = 0  # records read, skipped ones included
        self.loaded = asyncio.Event()
        # Told when the tail dies (the view is stale from then on).
        self.on_crash: Callable[[BaseException], None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # End offsets come from a client of their own: on the tailing one they would queue
        # behind its long-polling fetch (up to fetch_max_wait_ms per request).
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._live = False  # the tail is running (False from the moment it ends)
        self._progress = asyncio.Condition()

    async def start(self, partitions: Iterable[int] | None = None) -> None:
        """Read ``partitions`` (all of the topic's; None: as many as the broker has) from
        the beginning, then follow them."""
        consumer = self._consumer = self._make_client(**self._options)
        await consumer.start()
        offsets = self._offsets = self._make_client(**self._options)
        await offsets.start()
        if partitions is None:
            partitions = await partitions_of(offsets, self.topic)
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self.partitions)
        await consumer.seek_to_beginning(*self.partitions)
        initial = dict(await offsets.end_offsets(self.partitions))
        self._live = True
        self._task = asyncio.get_running_loop().create_task(self._tail(initial))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # A crash was logged and told when it happened: stopping still closes the clients.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in (self._consumer, self._offsets):
            if client is not None:
                await client.stop()
        self._consumer = self._offsets = None

    async def barrier(self, partitions: Iterable[int] | None = None) -> None:
        """Return once ``partitions`` (None: all) are applied up to their end offsets as of
        the call; ``ViewStopped`` when the tail is not running or stops meanwhile."""
        consumer, offsets = self._consumer, self._offsets
        if consumer is None or offsets is None or not self._live:
            raise ViewStopped(f"the view of {self.topic} is not running")
        wanted = None if partitions is None else set(partitions)
        chosen = [tp for tp in self.partitions if wanted is None or tp.partition in wanted]
        ends = dict(await offsets.end_offsets(chosen))
        async with self._progress:
            while True:
                if not self._live:
                    raise ViewStopped(f"the view of {self.topic} stopped")
                if await reached(consumer, ends):
                    return
                await self._progress.wait()

    async def caught_up(self, timeout_s: float, partitions: Iterable[int] | None = None) -> bool:
        """``barrier()`` as a yes/no: False past ``timeout_s`` or when the view is not
        running, i.e. when it cannot be proved current."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.barrier(partitions)
        except (TimeoutError, ViewStopped, KafkaError):  # KafkaError: the broker is away
            return False
        return True

    async def _tail(self, initial: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                except KafkaError as exc:
                    if not self.ride_out_kafka_errors:
                        raise
                    # The position is kept: the next fetch carries on from there.
                    log.warning("view_waiting", topic=self.topic, error=f"{type(exc).__name__}")
                    await asyncio.sleep(RETRY_S)
                    continue
                self.read += sum(len(records) for records in batches.values())
                # Applied before anyone is woken: a position seen past a record means the
                # record is in the view.
                batch = changes(batches, self.model, self.skip_header)
                if batch:
                    self.apply(batch)
                if not self.loaded.is_set() and await reached(consumer, initial):
                    self.loaded.set()
                async with self._progress:
                    self._progress.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("view_crashed", topic=self.topic, error=f"{type(exc).__name__}: {exc}")
            if self.on_crash is not None:
                self.on_crash(exc)
            raise
        finally:  # waiters see the view stopped and give up rather than wait for progress
            self._live = False
            with contextlib.suppress(Exception):
                async with self._progress:
                    self._progress.notify_all()


async def partitions_of(client: AIOKafkaConsumer, topic: str) -> list[int]:
    """The partitions the broker has for ``topic``."""
    known = client.partitions_for_topic(topic)
    if not known:
        # A client tracks only the topics it was asked about; ``topics()`` asks the broker
        # for all of them but keeps only their names, so this takes what it is built on.
        cluster = await client._client.fetch_all_metadata()
        known = cluster.partitions_for_topic(topic)
    if not known:
        raise ValueError(f"topic {topic} does not exist")
    return sorted(known)


async def reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    """Whether ``consumer`` has read every partition of ``ends`` up to its end offset."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
