"""The wiring of the action runner: clients, stores, handlers, the record pipeline and the
web pages. What each input does lives in the verb-named handler modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas.envelope import utcnow
from schemas.topics import CONTACT_CHANGES, DEAD_LETTERS, OPT_OUTS
from services.action_runner.answer_replies import AnswerReplies
from services.action_runner.apply_consent import ApplyConsentChanges
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.emissions import Emission
from services.action_runner.index_numbers import (
    IndexContactNumbers,
    RegionWatch,
    ReindexContactNumbers,
    UpdateNumberIndex,
)
from services.action_runner.internal import CONSENT_COMMANDS, PHONE_INDEX, PHONE_REINDEX
from services.action_runner.metrics import Metrics
from services.action_runner.parts import Parts
from services.action_runner.run_actions import RunActions
from services.action_runner.settings import RunnerSettings
from services.action_runner.stores import CONTACT_NUMBERS, STORES
from services.common.aio_kafka import aiokafka_options, pipeline_consumer, pipeline_producer
from services.common.catalog import Catalog
from services.common.codec import encode
from services.common.logging import get_logger
from services.common.number_opt_outs import NumberOptOuts
from services.common.records import Handler, PartitionedState, RecordPipeline, crash_after
from services.common.serving import serve_health
from services.common.state_store import StoreFactory, memory_stores, rocks_stores
from services.common.topic_layout import TopicDef, compacted

SERVICE = "action-runner"
INTERNAL = (PHONE_INDEX, CONSENT_COMMANDS, PHONE_REINDEX)
INTERNAL_RETENTION_MS = 7 * 24 * 3600 * 1000

log = get_logger(__name__)


def app_id(settings: RunnerSettings) -> str:
    return f"{settings.topic_prefix}action-runner"


def changelog(settings: RunnerSettings, store: str) -> str:
    # Not the "-changelog" names of the first release's faust runner, whose records had
    # another shape: a deploy of this runner starts these topics empty.
    return f"{app_id(settings)}-{store}-state"


def own_topics(settings: RunnerSettings, partitions: int) -> list[TopicDef]:
    """The runner's repartition topics and its stores' compacted changelogs."""
    name = app_id(settings)
    replication = settings.replication_factor
    return [
        TopicDef(
            f"{name}-{topic}",
            partitions,
            replication,
            topic_configs={"cleanup.policy": "delete", "retention.ms": str(INTERNAL_RETENTION_MS)},
        )
        for topic in INTERNAL
    ] + [compacted(changelog(settings, store), partitions, replication) for store in STORES]


def store_factory(settings: RunnerSettings) -> StoreFactory:
    if settings.action_runner_store.startswith("rocksdb"):
        return rocks_stores(
            Path(settings.data_dir) / app_id(settings), settings.action_runner_rocksdb_cache_mb
        )
    return memory_stores


class ActionRunner:
    def __init__(
        self,
        settings: RunnerSettings,
        partitions: int,
        catalog: Catalog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.partitions = partitions
        self.metrics = Metrics()
        self.parts = Parts(settings, catalog, clock, self.metrics, app_id(settings))
        options = aiokafka_options(settings)
        self.options = options
        self.producer = pipeline_producer(options, settings.action_runner_linger_ms)
        self.consumer = pipeline_consumer(
            options, app_id(settings), settings.action_runner_session_timeout_s
        )
        # End offsets for the barrier from a client of their own: the pipeline's consumer
        # would queue them behind its long-polling fetch.
        self.offsets = AIOKafkaConsumer(**options, enable_auto_commit=False)
        self.barrier = ConsentBarrier(self._end_offsets, settings.consent_barrier_timeout_s)
        self.opt_outs = NumberOptOuts(settings.topic(OPT_OUTS), options)
        self.state = PartitionedState(
            {store: changelog(settings, store) for store in STORES}, store_factory(settings)
        )
        parts = self.parts
        handlers: list[Handler] = [
            RunActions(
                parts,
                self.barrier,
                lambda: self.opt_outs.caught_up(settings.consent_barrier_timeout_s),
                self.opt_outs.opted_out,
                partitions,
            ),
            ApplyConsentChanges(parts, self.barrier),
            AnswerReplies(parts, self.barrier),
        ]
        by_topic: dict[str, Handler] = {h.topic: h for h in handlers}  # type: ignore[attr-defined]
        by_topic[parts.topic(CONTACT_CHANGES)] = IndexContactNumbers(parts)
        by_topic[parts.topic(PHONE_REINDEX)] = ReindexContactNumbers(parts)
        by_topic[parts.topic(PHONE_INDEX)] = UpdateNumberIndex(parts)
        # The consent topics, whose progress the barrier follows.
        self.followed = {parts.topic(CONSENT_COMMANDS), handlers[2].topic}  # type: ignore[attr-defined]
        self.pipeline = RecordPipeline(
            service=SERVICE,
            consumer=self.consumer,
            producer=self.producer,
            handlers=by_topic,
            state=self.state,
            dead_letter_topic=settings.topic(DEAD_LETTERS),
            metrics=self.metrics,
            client_options=options,
        )
        self.pipeline.listeners.append(self)
        if settings.inject_crash_after_outputs:
            self.pipeline.outputs_acked = crash_after(
                settings.inject_crash_after_outputs, {"run_actions"}
            )
        self.regions = RegionWatch(parts)
        self._tasks: list[asyncio.Task[Any]] = []
        self._web: web.AppRunner | None = None

    @property
    def ready(self) -> bool:
        return (
            self.pipeline.assigned.is_set()
            and self.opt_outs.loaded.is_set()
            and bool(self.consumer.assignment())
        )

    async def _end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.offsets.end_offsets(tps))

    # rebalance hooks: the barrier follows the consent partitions this instance reads
    async def revoked(self, revoked: set[TopicPartition]) -> None:
        self.barrier.forget(revoked)

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            if tp.topic in self.followed:
                self.barrier.start(tp, await self.consumer.committed(tp) or 0)

    async def _send(self, topic: str, events: Iterable[Any]) -> None:
        emissions = [Emission.of(topic, e) for e in events]
        pending = [
            await self.producer.send(self.parts.topic(e.topic), encode(e.event), key=e.key.encode())
            for e in emissions
        ]
        await asyncio.gather(*pending)

    async def start(self) -> None:
        await self.producer.start()
        await self.offsets.start()
        await self.opt_outs.start(self.partitions)
        await self.consumer.start()
        self.pipeline.subscribe()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.pipeline.run()),
            loop.create_task(
                self.regions.run(
                    lambda: self.state.items(CONTACT_NUMBERS), self._send, lambda: self.ready
                )
            ),
            loop.create_task(self._announce_ready()),
        ]
        await self._serve_web()

    async def stop(self) -> None:
        await self.pipeline.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._web is not None:
            await self._web.cleanup()
        await self.consumer.stop()
        await self.opt_outs.stop()
        await self.offsets.stop()
        await self.producer.stop()
        self.state.drop(self.state.partitions)

    async def wait(self) -> None:
        """Until the pipeline's loop ends (it raises what stopped it)."""
        await self._tasks[0]

    async def _announce_ready(self) -> None:
        while not self.ready:
            await asyncio.sleep(0.1)
        log.info(
            "service_ready",
            service=SERVICE,
            assigned=len(self.consumer.assignment()),
            port=self.settings.action_runner_port,
        )

    async def _serve_web(self) -> None:
        self._web = await serve_health(
            lambda: self.ready,
            self.metrics.render,
            self.settings.action_runner_bind,
            self.settings.action_runner_port,
        )
