"""Keeps a ``Catalog`` current from the compacted ``definitions`` topic, in a thread, for the
synchronous command-line tools (kafka-python); services use ``DefinitionsView`` on their loop.

Each instance reads every partition from the beginning without a consumer group. Records are
decoded and applied exactly as the view does (``changes`` and ``CatalogUpdates``).
"""

from __future__ import annotations

import threading
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schemas.definitions import DefinitionApplied
from schemas.topics import DEFINITIONS
from services.common.catalog import Catalog
from services.common.compacted_view import changes
from services.common.definitions_view import CatalogUpdates, Listener
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.control.kafka import make_consumer

log = get_logger(__name__)

RETRY_S = 1.0  # between two tries while the broker is away


class DefinitionsFeed:
    def __init__(
        self,
        settings: KafkaSettings,
        catalog: Catalog | None = None,
        on_change: Listener | None = None,
    ) -> None:
        self.settings = settings
        self.updates = CatalogUpdates(catalog, on_change)
        self.catalog = self.updates.catalog
        self.lock = self.updates.lock  # held while the catalog changes
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="definitions-feed", daemon=True)

    def start(self, wait_s: float | None = 30.0) -> DefinitionsFeed:
        self._thread.start()
        if wait_s is not None and not self._caught_up.wait(wait_s):
            raise TimeoutError("definitions topic not read to its end in time")
        return self

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._caught_up.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        topic = self.settings.topic(DEFINITIONS)
        consumer = make_consumer(self.settings, group_id=None)
        try:
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            while not self._stop.is_set():
                try:
                    self._poll(consumer, partitions, end)
                except KafkaError as exc:
                    # The broker went away: keep the catalog as it is and keep asking; the
                    # consumer reconnects and carries on from its position.
                    log.warning("definitions_feed_waiting", error=f"{type(exc).__name__}: {exc}")
                    self._stop.wait(RETRY_S)
        finally:
            consumer.close()

    def _poll(
        self, consumer: KafkaConsumer, partitions: list[TopicPartition], end: dict[Any, int]
    ) -> None:
        batch = changes(consumer.poll(timeout_ms=200), DefinitionApplied)
        if batch:
            self.updates(batch)
        if not self._caught_up.is_set() and all(
            consumer.position(tp) >= end[tp] for tp in partitions
        ):
            self._caught_up.set()
            log.info("definitions_loaded", count=len(self.catalog.revisions))
