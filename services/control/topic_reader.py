"""Reading topics from the beginning to their current end, without a consumer group.

The operators' commands answer from the topics alone (they work while the services are
down) and commit nothing. With ``key``, only the partition that key hashes to is read
(every producer here uses Kafka's default murmur2 partitioner), then filtered by key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from schemas.envelope import Event
from schemas.registry import EVENT_MODELS
from services.common.codec import DecodeError, decode
from services.common.settings import KafkaSettings
from services.control.console import BrokerUnreachable


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = field(default=(), compare=False)

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def open_consumer(settings: KafkaSettings) -> KafkaConsumer:
    try:
        return KafkaConsumer(
            **settings.client_config(), enable_auto_commit=False, isolation_level="read_committed"
        )
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"cannot connect to {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client) picks."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def read_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    key: str | None = None,
    start_ms: int | None = None,
    timeout_s: float = 60.0,
) -> list[Record]:
    """Every record now in ``topics`` (full names), each topic's partitions in offset order.

    ``start_ms`` starts each partition at the first record written at or after that time.
    """
    topics = list(topics)
    consumer = open_consumer(settings)
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            numbers = sorted(consumer.partitions_for_topic(topic) or ())
            if key is not None and numbers:
                numbers = [partition_of(key, len(numbers))]
            partitions += [TopicPartition(topic, p) for p in numbers]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        if start_ms is not None:
            found = consumer.offsets_for_times(dict.fromkeys(partitions, start_ms))
            end_now = consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else end_now[tp])
        end = consumer.end_offsets(partitions)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {sorted(set(topics))} to the end")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    record_key = None if r.key is None else r.key.decode("utf-8", "replace")
                    if key is not None and record_key != key:
                        continue
                    out.append(
                        Record(
                            r.topic,
                            r.partition,
                            r.offset,
                            record_key,
                            r.value,
                            r.timestamp,
                            tuple(r.headers or ()),
                        )
                    )
        out.sort(key=lambda rec: (rec.topic, rec.partition, rec.offset))
        return out
    finally:
        consumer.close()


def decode_event(value: bytes | None) -> Event:
    """Any contract event, by its ``event_type``; DecodeError for anything else."""
    if value is None:
        raise DecodeError("tombstone")
    try:
        event_type = json.loads(value).get("event_type")
    except (ValueError, AttributeError) as exc:
        raise DecodeError(f"not a JSON object: {exc}") from exc
    model = EVENT_MODELS.get(str(event_type))
    if model is None:
        raise DecodeError(f"unknown event_type {event_type!r}")
    return decode(model, value)
