"""kafka-python clients and topic administration built from settings, for the control
commands, the tests and the benchmarks (the services administer topics with aiokafka:
``topic_admin``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, TopicSpec
from services.common.codec import encode, encode_key
from services.common.settings import KafkaSettings
from services.common.topic_layout import CO_PARTITIONED, contract_topics, require_same_partitions


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    # kafka-python 3 defaults to an idempotent producer with acks=all.
    options: dict[str, Any] = {"linger_ms": 5, "acks": "all"}
    options.update(overrides)
    return KafkaProducer(**settings.client_config(), **options)


def make_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    # Offsets are committed by hand, after the outcome of each record is recorded.
    options: dict[str, Any] = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return KafkaConsumer(*topics, **settings.client_config(), **options)


def make_admin(settings: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**settings.client_config(), **overrides)


def send_model(producer: KafkaProducer, topic: str, model: Any, key: str | None = None) -> Any:
    """Produce one event; the key defaults to the model's own ``key``."""
    return producer.send(topic, key=encode_key(key or model.key), value=encode(model))


def create_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec] = ALL_TOPICS, timeout_s: float = 30.0
) -> list[str]:
    """Create every contract topic that is missing; returns the names created. Idempotent."""
    return ensure_topics(
        settings,
        [
            NewTopic(t.name, t.num_partitions, t.replication_factor, topic_configs=t.topic_configs)
            for t in contract_topics(settings, specs)
        ],
        timeout_s,
    )


def check_partitioning(settings: KafkaSettings, timeout_s: float = 30.0) -> dict[str, int]:
    """The partition count of each topic of ``CO_PARTITIONED``; raises ``TopicLayoutError``
    when they differ."""
    consumer = make_consumer(settings)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            counts = {
                settings.topic(spec): len(consumer.partitions_for_topic(settings.topic(spec)) or ())
                for spec in CO_PARTITIONED
            }
            if all(counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        consumer.close()
    require_same_partitions(counts)
    return counts


def ensure_topics(
    settings: KafkaSettings, topics: Iterable[NewTopic], timeout_s: float = 60.0
) -> list[str]:
    """Create the topics that are missing and wait until the broker's metadata shows them.

    Clients that subscribe to a topic before it is visible ignore it or fail to route to it,
    so topics are created up front rather than on first use.
    """
    topics = list(topics)
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        created: list[str] = []
        for topic in topics:
            if topic.name in existing:
                continue
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # a concurrent creator won: the goal is reached all the same
        _wait_for_metadata(admin, [t.name for t in topics], timeout_s)
        return created
    finally:
        admin.close()


def _wait_for_metadata(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if set(names) <= set(admin.list_topics()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics not visible after {timeout_s}s: {names}")
