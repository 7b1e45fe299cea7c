"""Broker-free stand-ins for the record pipeline's unit tests: an in-memory producer that
acknowledges at once (or fails on demand), consumer records, and a pipeline on memory
stores whose batches can be run one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from services.common.records import Handler, PartitionedState, RecordPipeline
from services.common.state_store import decode_value, memory_stores


@dataclass
class Sent:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None

    @property
    def json(self) -> Any:
        return decode_value(self.value)


class _Builder:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object:
        self.records.append((key, value))
        return object()


@dataclass
class FakeProducer:
    """Everything "sent", in the order it was acknowledged; ``fail`` fails the next send."""

    partitions: int = 3
    sent: list[Sent] = field(default_factory=list)
    fail: Exception | None = None

    def create_batch(self) -> _Builder:
        return _Builder()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send_batch(self, batch: _Builder, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            future.set_exception(self.fail)
            self.fail = None
        else:
            self.sent.extend(Sent(topic, partition, k, v) for k, v in batch.records)
            future.set_result(None)
        return future

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


class _Metrics:
    def __init__(self) -> None:
        self.dead: list[str] = []
        self.batches: list[tuple[str, int]] = []

    def dead_lettered(self, topic: str) -> None:
        self.dead.append(topic)

    def batch_handled(self, handler: str, records: int, seconds: float) -> None:
        self.batches.append((handler, records))


def record(
    topic: str,
    offset: int,
    value: bytes | None,
    key: bytes | None = b"k",
    partition: int = 0,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,
    )


class MemoryPipeline:
    """A RecordPipeline on memory stores and a FakeProducer, without a consumer: ``run``
    handles one batch of one partition and returns the offset it would commit."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        stores: Mapping[str, str],
        raw: Iterable[str] = (),
        service: str = "test",
    ) -> None:
        self.producer = FakeProducer()
        self.metrics = _Metrics()
        self.state = PartitionedState(stores, memory_stores, raw=raw)
        self.pipeline = RecordPipeline(
            service=service,
            consumer=None,  # type: ignore[arg-type]
            producer=self.producer,  # type: ignore[arg-type]
            handlers=handlers,
            state=self.state,
            dead_letter_topic="dead-letters",
            metrics=self.metrics,
            client_options={},
            retry_delays=(0.0,),
        )

    async def run(self, records: list[ConsumerRecord[bytes, bytes]]) -> int | None:
        """Decides, sends and writes the batch; the offset to commit (None: nothing done)."""
        first = records[0]
        tp = TopicPartition(first.topic, first.partition)
        handler = self.pipeline.handlers[first.topic]
        await self.pipeline._run_batch(tp, handler, records, 0)
        await self.pipeline.written(tp)
        return self.pipeline._to_commit.pop(tp, None)

    def stored(self, store: str, key: str, partition: int = 0) -> Any:
        return self.state.of(partition)[store].get(key)
