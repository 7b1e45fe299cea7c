"""A tail of one topic on the real broker: every record since its beginning, decoded, read
incrementally, so a test can wait for an output and then show that nothing more arrives."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from schemas.topics import TopicSpec
from services.common.codec import decode
from services.common.settings import KafkaSettings

M = TypeVar("M", bound=BaseModel)


class Tail(Generic[M]):
    """Everything on one topic so far (``spec``, or a full topic name such as a service's
    internal topic), kept decoded in ``items``."""

    def __init__(self, settings: KafkaSettings, spec: TopicSpec | str, model: type[M]) -> None:
        self.topic = spec if isinstance(spec, str) else settings.topic(spec)
        self.model = model
        self.items: list[M] = []
        self.consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        self.partitions = [TopicPartition(self.topic, p) for p in partitions]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)

    def poll(self) -> list[M]:
        """Everything on the topic up to its end as of now."""
        end = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + 15
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end")
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                self.items += [decode(self.model, r.value) for r in records]
        return self.items

    def wait(
        self, predicate: Callable[[list[M]], Any], timeout_s: float = 30.0, what: str = ""
    ) -> Any:
        """The first truthy ``predicate(items)``; fails with ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = predicate(self.poll())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or predicate} on {self.topic};"
                    f" have {self.items!r}"[:3000]
                )
            time.sleep(0.05)

    def settle(self, seconds: float) -> list[M]:
        """Keep reading for ``seconds`` (to show that nothing more arrives)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)
        return self.items

    def close(self) -> None:
        self.consumer.close()
