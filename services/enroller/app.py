"""The wiring of the enroller: clients, stores, handlers, the record pipeline, the timer
task and the web pages. What each input does lives in ``enroll_contacts`` (records) and
``fire_timers`` (due delays, take-over after a rebalance, enroll_existing).

``contact-changes`` and ``action-results`` are both keyed by contact and co-partitioned:
the range assignor gives one instance the same partitions of both, and the pipeline
decides a contact's records in order against that partition's state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from prometheus_client import generate_latest

from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES, DEAD_LETTERS
from services.common.aio_kafka import aiokafka_options, pipeline_consumer, pipeline_producer
from services.common.logging import get_logger
from services.common.records import PartitionedState, RecordPipeline, crash_after
from services.common.serving import serve_health
from services.common.state_store import StoreFactory, memory_stores, rocks_stores

from . import metrics
from .contacts import CONTACTS, STORES, Contacts
from .definitions import Definitions
from .enroll_contacts import EnrollContacts
from .fire_timers import Upkeep
from .outputs import Outputs
from .settings import EnrollerSettings

SERVICE = "enroller"
log = get_logger("services.enroller")


def changelog(settings: EnrollerSettings, store: str) -> str:
    """faust's name for a table's changelog, kept: a deployment keeps its contacts."""
    return f"{settings.app_id}-{store}-changelog"


def store_factory(settings: EnrollerSettings) -> StoreFactory:
    if settings.enroller_store.startswith("rocksdb"):
        root = Path(settings.data_dir) / "enroller"
        return rocks_stores(root, settings.enroller_rocksdb_cache_mb, raw={CONTACTS})
    return memory_stores


class Enroller:
    def __init__(self, settings: EnrollerSettings, definitions: Definitions, partitions: int):
        self.settings = settings
        self.definitions = definitions
        self.partitions = partitions
        options = aiokafka_options(settings)
        self.producer = pipeline_producer(options, settings.enroller_linger_ms)
        self.consumer = pipeline_consumer(
            options, settings.app_id, settings.enroller_session_timeout_s
        )
        self.changes_topic = settings.topic(CONTACT_CHANGES)
        self.results_topic = settings.topic(ACTION_RESULTS)
        self.state = PartitionedState(
            {store: changelog(settings, store) for store in STORES},
            store_factory(settings),
            raw={CONTACTS},
        )
        self.contacts = Contacts(settings, definitions, Outputs.of(settings))
        handlers = {
            topic: EnrollContacts(self.contacts, topic, event_type)
            for topic, event_type in (
                (self.changes_topic, "contact.changed"),
                (self.results_topic, "action.completed"),
            )
        }
        self.pipeline = RecordPipeline(
            service=SERVICE,
            consumer=self.consumer,
            producer=self.producer,
            handlers=handlers,
            state=self.state,
            dead_letter_topic=settings.topic(DEAD_LETTERS),
            metrics=metrics.PipelineCounts(),
            client_options=options,
            max_records=settings.enroller_batch_size,
        )
        if settings.inject_crash_after_outputs:
            self.pipeline.outputs_acked = crash_after(
                settings.inject_crash_after_outputs, {h.name for h in handlers.values()}
            )
        self.upkeep = Upkeep(self.pipeline, self.contacts, self.changes_topic, partitions)
        self.pipeline.listeners.append(self.upkeep)
        self._looping: asyncio.Task[None] | None = None  # the pipeline's loop
        self._timing: asyncio.Task[None] | None = None  # the timer task
        self._web: web.AppRunner | None = None

    @property
    def ready(self) -> bool:
        return self.pipeline.assigned.is_set() and self.upkeep.ready

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.pipeline.subscribe()
        loop = asyncio.get_running_loop()
        self._looping = loop.create_task(self.pipeline.run())
        self._timing = loop.create_task(self.upkeep.run(self.settings.enroller_timer_interval_s))
        self._web = await serve_health(
            lambda: self.ready,
            generate_latest,
            self.settings.enroller_host,
            self.settings.enroller_port,
        )

    async def stop(self) -> None:
        await _cancel(self._timing)  # the timer first: its jobs must not outlive the pipeline
        await self.pipeline.stop()
        await _cancel(self._looping)
        if self._web is not None:
            await self._web.cleanup()
        await self.consumer.stop()
        await self.producer.stop()
        self.state.drop(self.state.partitions)

    async def wait(self) -> None:
        """Until the pipeline's loop ends (it raises what stopped it)."""
        assert self._looping is not None, "not started"
        await self._looping


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
