"""aiokafka clients for the sender's asyncio loop, configured like the kafka-python ones.

The request consumer, the ledger and status writes and the ledger tail all run on the loop
with aiokafka (record batches built and checked in its C extension, no thread hand-offs).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.aio_kafka import aiokafka_options
from services.common.settings import KafkaSettings


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    # acks=all, but no idempotent producer: aiokafka keeps its producer id and sequence
    # numbers across a broker restart and then fails every write with
    # OutOfOrderSequenceNumber for good. A write repeated after a lost acknowledgement is
    # harmless here (ledger entries only move forward; status events keep their event_id),
    # and aiokafka sends one batch per partition at a time, so order holds.
    options: dict[str, Any] = {"enable_idempotence": False, "acks": "all", "linger_ms": 5}
    options.update(overrides)
    return AIOKafkaProducer(**aiokafka_options(settings), **options)


def make_consumer(
    settings: KafkaSettings, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """Offsets are committed by hand, after the outcome of each record is recorded."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**aiokafka_options(settings), **options)


def make_reader(settings: KafkaSettings, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer without a group, for reading whole topics."""
    return make_consumer(settings, None, **overrides)
