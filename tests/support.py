"""Helpers for tests that talk to the real broker: fresh topics, produce, read back."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from schemas.topics import ALL_TOPICS, TopicSpec
from services.common.codec import decode
from services.common.settings import KafkaSettings
from services.control.kafka import create_topics, make_admin, make_producer, send_model

M = TypeVar("M", bound=BaseModel)


def fresh_settings(bootstrap: str, partitions: int = 3, **overrides: Any) -> KafkaSettings:
    """Settings with a topic prefix of their own, and every topic created under it."""
    settings = KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=partitions,
        **overrides,
    )
    create_topics(settings)
    return settings


def drop_topics(settings: KafkaSettings) -> None:
    """Delete every topic under the settings' prefix (services' changelogs included): each
    partition holds open files in the broker, and a long suite would exhaust them."""
    admin = make_admin(settings)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if ours:
            admin.delete_topics(ours, timeout_ms=30_000)
    except Exception:  # best effort: a test's result never depends on its clean-up
        pass
    finally:
        admin.close()


def produce(settings: KafkaSettings, spec: TopicSpec, events: Iterable[Any]) -> None:
    producer = make_producer(settings)
    try:
        for event in events:
            send_model(producer, settings.topic(spec), event)
        producer.flush(timeout=30)
    finally:
        producer.close()


def read_all(settings: KafkaSettings, spec: TopicSpec) -> list[tuple[str | None, bytes | None]]:
    """Every record now in the topic (key, value), partition by partition."""
    consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
    try:
        topic = settings.topic(spec)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: list[tuple[str | None, bytes | None]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for records in consumer.poll(timeout_ms=200).values():
                out += [(r.key.decode() if r.key else None, r.value) for r in records]
        return out
    finally:
        consumer.close()


def read_models(settings: KafkaSettings, spec: TopicSpec, model: type[M]) -> list[M]:
    return [decode(model, value) for _, value in read_all(settings, spec)]


def wait_for(
    probe: Callable[[], M | bool | None],
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


__all__ = ["ALL_TOPICS", "fresh_settings", "produce", "read_all", "read_models", "wait_for"]


def stop_process(process: subprocess.Popen[Any], timeout_s: float) -> int:
    """SIGTERM, SIGKILL if it has not exited within ``timeout_s``; its stdout pipe closed."""
    process.terminate()
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return code
