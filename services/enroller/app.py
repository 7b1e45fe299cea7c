"""faust wiring: topics, tables, the agent, the timer task and the web pages. No decisions.

One agent (``enroll_contacts``) reads ``contact-changes`` and ``action-results`` together, in
batches (``take_events``): both are keyed by contact and co-partitioned, so every record of a
contact is handled by one task, in order, with that contact's state (table ``contacts``) on
the same partition. ``handle_records`` decides a batch, sends its outputs and awaits their
acks, then writes each contact once; faust commits the offsets after that. A task
(``fire_timers``) ends due delays and deferrals at their due time, re-sends commands after a
rebalance and runs ``enroll_existing`` scans, holding each contact's key like a batch does.
"""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES
from services.common.aio_kafka import faust_broker, faust_credentials
from services.common.faust_app import App

from .contacts import Contacts
from .definitions import Definitions
from .fire_timers import Upkeep
from .handle_records import RecordHandler
from .outputs import RAW, Outputs
from .settings import EnrollerSettings
from .state import ContactState


class Enroller:
    def __init__(self, settings: EnrollerSettings, definitions: Definitions, partitions: int):
        self.settings = settings
        self.definitions = definitions
        self.partitions = partitions
        self.app = app = self._make_app()
        self.changes_topic = settings.topic(CONTACT_CHANGES)
        self.results_topic = settings.topic(ACTION_RESULTS)
        self.sources = app.topic(self.changes_topic, self.results_topic, schema=RAW)
        self.outputs = outputs = Outputs.of(app, settings, self.results_topic)
        self.actions, self.events = outputs.actions, outputs.events
        self.results, self.statuses = outputs.results, outputs.statuses
        self.dead_letters = outputs.dead_letters
        self.store = Contacts(
            settings,
            definitions,
            partitions,
            self.outputs,
            table=self._table(
                "contacts", "Per contact: properties, recent change ids, enrollments."
            ),
            marks=self._table(
                "existing-scans", "Per partition: workflows acted on for enroll_existing."
            ),
        )
        self.handler = RecordHandler(
            self.store,
            {self.changes_topic: "contact.changed", self.results_topic: "action.completed"},
        )
        self.upkeep = Upkeep(app, self.changes_topic, self.store)
        self.agent = app.agent(self.sources, name="enroll_contacts", concurrency=1)(
            self._agent_fun()
        )
        app.task(self._timer_fun())
        self._add_pages()

    # ------------------------------------------------------------ its parts, by name

    @property
    def contacts(self) -> Any:
        return self.store.table

    @contacts.setter
    def contacts(self, table: Any) -> None:
        self.store.table = table

    @property
    def marks(self) -> Any:
        return self.store.marks

    @marks.setter
    def marks(self, table: Any) -> None:
        self.store.marks = table

    @property
    def timers(self) -> Any:
        return self.store.timers

    def load(self, key: str) -> ContactState | None:
        return self.store.load(key)

    # ------------------------------------------------------------ set-up

    def _make_app(self) -> faust.App:
        s = self.settings
        return App(
            id=s.app_id,
            broker=faust_broker(s),
            broker_credentials=faust_credentials(s),
            store=s.enroller_store,
            topic_partitions=self.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=True,  # the changelog topics are faust's to create
            topic_disable_leader=True,
            processing_guarantee="at_least_once",
            broker_commit_interval=s.enroller_commit_interval_s,
            broker_session_timeout=s.enroller_session_timeout_s,
            broker_heartbeat_interval=max(0.5, s.enroller_session_timeout_s / 10),
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # Commands and enrollment events are on the path to an SMS: a batch's outputs
            # are queued together anyway, so a short linger only costs latency when idle.
            producer_linger_ms=s.enroller_linger_ms,
            stream_buffer_maxsize=16384,
            broker_max_poll_records=2000,
            web_bind=s.enroller_host,
            web_port=s.enroller_port,
            web_in_thread=False,
            datadir=str(s.data_dir / "enroller"),
            key_serializer="raw",
            value_serializer="raw",
            autodiscover=False,
        )

    def _table(self, name: str, help: str) -> Any:
        return self.app.Table(
            name,
            # Raw bytes both ways: a table derives its changelog serializers from these types,
            # and the key's bytes must hash to the partition the source topics put it on.
            key_type=bytes,
            value_type=bytes,
            partitions=self.partitions,
            use_partitioner=True,
            options=self._store_options(),  # its own: the store pops keys out of it
            help=help,
        )

    def _store_options(self) -> dict[str, Any] | None:
        if not self.settings.enroller_store.startswith("rocksdb"):
            return None
        # rocksdict's default block cache is 2 GiB per partition database: far too much.
        return {
            "driver": "rocksdict",
            "block_cache_size": self.settings.enroller_rocksdb_cache_mb << 20,
        }

    def _agent_fun(self) -> Any:
        handler, definitions = self.handler, self.definitions
        size, within = self.settings.enroller_batch_size, self.settings.enroller_batch_wait_s

        async def enroll_contacts(stream: faust.StreamT[bytes]) -> None:
            # Nothing is decided against a partial catalog; unhandled records stay uncommitted.
            await definitions.loaded.wait()
            async for events in stream.take_events(size, within=within):
                await handler.handle(events)

        return enroll_contacts

    def _timer_fun(self) -> Any:
        upkeep, interval = self.upkeep, self.settings.enroller_timer_interval_s
        definitions = self.definitions

        async def fire_timers() -> None:
            await definitions.loaded.wait()
            await upkeep.run(interval)

        return fire_timers

    def _add_pages(self) -> None:
        upkeep = self.upkeep

        async def healthz(view: Any, request: Any) -> Any:
            return view.json({"ok": upkeep.ready}, status=200 if upkeep.ready else 503)

        async def prometheus(view: Any, request: Any) -> Any:
            # aiohttp wants the charset apart from the content type.
            content_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
            return view.bytes(generate_latest(), content_type=content_type)

        self.app.page("/healthz")(healthz)
        self.app.page("/metrics")(prometheus)
