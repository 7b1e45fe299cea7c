"""faust wiring: topics, tables, the agent, the timer and the web pages. No decisions here.

One agent (``enroll_contacts``) reads ``contact-changes`` and ``action-results`` together:
both are keyed by contact and co-partitioned, so every record of a contact is handled by
one task, in order, with that contact's state (table ``contacts``) on the same partition.
A timer (``fire_timers``) ends due delays and deferrals, re-sends commands after a restart
and runs ``enroll_existing`` scans; it writes the same table, which is safe because each
contact's read, decision, sends and write happen while its key is held (``KeyGuard``) and
the table partitions by key (``use_partitioner``), exactly like the producers of the source
topics. Outputs are sent before the state is written: a send that fails leaves the state
as it was, so the record (or the timer) is handled again rather than its outputs lost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from structlog.contextvars import bind_contextvars, clear_contextvars

from schemas.contacts import ContactChange
from schemas.topics import (
    ACTION_RESULTS,
    ACTIONS,
    CONTACT_CHANGES,
    DEAD_LETTERS,
    ENROLLMENT_EVENTS,
    SMS_STATUS,
)
from services.common.aio_kafka import faust_broker, faust_credentials
from services.common.codec import DecodeError, encode
from services.common.dead_letters import dead_letter
from services.common.faust_app import App
from services.common.logging import get_logger

from . import metrics
from .definitions import Definitions
from .engine import ContactEngine, InvalidRecord
from .guard import KeyGuard
from .inbound import decode_inbound
from .partitioning import in_stream, on_partition, partition_of
from .retries import retrying
from .rules import Reason
from .settings import EnrollerSettings
from .state import ContactState, decode_state, encode_state
from .timers import TimerQueue
from .upkeep import Upkeep

log = get_logger("services.enroller")
RAW: faust.Schema[bytes, bytes] = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)


class Enroller:
    def __init__(self, settings: EnrollerSettings, definitions: Definitions, partitions: int):
        self.settings = settings
        self.definitions = definitions
        self.partitions = partitions
        self.timers = TimerQueue()
        self.guard = KeyGuard()
        self.upkeep = Upkeep(self)
        self._counters: dict[str, Any] = {}
        self.app = self._make_app()
        app = self.app
        self.changes_topic = settings.topic(CONTACT_CHANGES)
        self.results_topic = settings.topic(ACTION_RESULTS)
        self.sources = app.topic(self.changes_topic, self.results_topic, schema=RAW)
        self._expected = {
            self.changes_topic: "contact.changed",
            self.results_topic: "action.completed",
        }
        self.actions = app.topic(settings.topic(ACTIONS), schema=RAW)
        self.events = app.topic(settings.topic(ENROLLMENT_EVENTS), schema=RAW)
        # Branches taken, and SMS held by a sending window, are reported like the runner's.
        self.results = app.topic(self.results_topic, schema=RAW)
        self.statuses = app.topic(settings.topic(SMS_STATUS), schema=RAW)
        self.dead_letters = app.topic(settings.topic(DEAD_LETTERS), schema=RAW)
        self.contacts = app.Table(
            "contacts",
            # Raw bytes both ways: a table derives its changelog serializers from these types,
            # and the key's bytes must hash to the partition the source topics put it on.
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            use_partitioner=True,
            options=self._store_options(),  # its own: the store pops keys out of it
            help="Per contact: properties, recent change ids, enrollments.",
        )
        self.marks = app.Table(
            "existing-scans",
            # Raw bytes both ways: a table derives its changelog serializers from these types,
            # and the key's bytes must hash to the partition the source topics put it on.
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            use_partitioner=True,
            options=self._store_options(),  # its own: the store pops keys out of it
            help="Per partition: workflows acted on for enroll_existing.",
        )
        self.agent = app.agent(self.sources, name="enroll_contacts", concurrency=1)(
            self._agent_fun()
        )
        app.timer(settings.enroller_timer_interval_s, name="fire_timers")(self._timer_fun())
        self._add_pages()

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
            # Batch outputs for a few ms: one produce request per record costs more CPU
            # than the record itself.
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

    def _store_options(self) -> dict[str, Any] | None:
        if not self.settings.enroller_store.startswith("rocksdb"):
            return None
        # rocksdict's default block cache is 2 GiB per partition database: far too much.
        return {
            "driver": "rocksdict",
            "block_cache_size": self.settings.enroller_rocksdb_cache_mb << 20,
        }

    def _agent_fun(self) -> Any:
        async def enroll_contacts(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await self.handle_record(event)

        return enroll_contacts

    def _timer_fun(self) -> Any:
        async def fire_timers() -> None:
            try:
                await self.upkeep.tick(time.time())
            except Exception:  # the timer must keep running; the next tick retries
                log.exception("timer_failed")

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

    # ------------------------------------------------------------ records

    async def handle_record(self, event: EventT[bytes]) -> None:
        """One record of either source topic; never raises (faust would skip it silently).

        A record that can never be applied is dead-lettered at once. Anything else (a
        producer hiccup, a bug) is retried in place a few times first. Deciding reads the
        state and writes nothing; sending is retried on its own afterwards, re-sending the
        same events with the same ids rather than deciding again, and the state is written
        only once they are out: a record dead-lettered after all leaves it untouched.
        """
        message = event.message
        started = time.perf_counter()
        clear_contextvars()
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        bind_contextvars(
            service="enroller",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
        )
        try:
            async with self.guard.hold(key or ""):
                handled, engine = await retrying(
                    lambda: self._apply(key, message.topic, message.value)
                )
                await retrying(lambda: self.commit(engine))
        except (DecodeError, InvalidRecord) as exc:
            await self._dead_letter(event, exc.reason, exc)
            return
        except Exception as exc:  # still failing: park the record, keep the partition going
            log.exception("record_failed")
            await self._dead_letter(event, f"unexpected {type(exc).__name__}: {exc}", exc)
            return
        finally:
            metrics.HANDLE_SECONDS.observe(time.perf_counter() - started)
        self._handled_counter(message.topic).inc()
        self.log_handled(handled, engine)

    async def _apply(
        self, key: str | None, topic: str, value: bytes | None
    ) -> tuple[str, ContactEngine]:
        record = decode_inbound(topic, value, self._expected)
        if key is None or key != record.key:
            raise InvalidRecord(f"record key {key!r} is not the contact key {record.key!r}")
        engine = self.engine(key, time.time())
        if isinstance(record, ContactChange):
            engine.apply_change(record)
            handled = "change_applied"
        else:
            engine.apply_result(record)
            handled = "result_applied"
        return handled, engine

    def _handled_counter(self, topic: str) -> Any:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = metrics.RECORDS.labels(_short(topic), "handled")
        return counter

    # ------------------------------------------------------------ contacts

    def engine(self, key: str, now: float) -> ContactEngine:
        return ContactEngine(
            self.definitions.index(),
            key,
            self.load(key),
            now,
            self.settings.enroller_dedupe_window,
        )

    def load(self, key: str) -> ContactState | None:
        return decode_state(self.contacts.get(key.encode()))

    def contact_keys(self) -> list[str]:
        return [key.decode() for key in list(self.contacts.keys())]

    def store(self, engine: ContactEngine) -> None:
        """Write the contact back (synchronously: no other task sees a half-applied record)."""
        if not engine.effects.dirty:
            return
        raw = encode_state(engine.state)
        if in_stream():  # in the agent: the record's own partition
            self.contacts[engine.key.encode()] = raw
        else:
            with on_partition(partition_of(engine.key, self.partitions)):
                self.contacts[engine.key.encode()] = raw
        self.timers.schedule(engine.key, engine.state.next_due())

    async def commit(self, engine: ContactEngine, acked: bool = False) -> None:
        """Send the outputs (once, however often this is retried), then write the state.

        Call it while holding the contact's key (``guard``). In the agent, faust flushes the
        producer before it commits the record's offset, so a lost send means the record is
        handled again; the timer has no offset to hold back, so it passes ``acked`` and
        waits for the broker's acknowledgement of its outputs before writing the state."""
        effects = engine.effects
        if not effects.sent and effects.outputs:
            await self.emit(engine, acked)
        effects.sent = True
        self.store(engine)

    async def emit(self, engine: ContactEngine, acked: bool = False) -> None:
        raw_key = engine.key.encode()
        effects = engine.effects
        sends: list[tuple[Any, bytes]] = []
        for decision in effects.events:
            metrics.DECISIONS.labels(decision.decision.value).inc()
            if decision.reason == Reason.GOAL_MET.value:
                metrics.GOALS_MET.labels(decision.account_id, decision.workflow_id).inc()
            sends.append((self.events, encode(decision)))
        sends += [(self.results, encode(result)) for result in effects.results]
        sends += [(self.statuses, encode(status)) for status in effects.statuses]
        for command in effects.commands:
            metrics.COMMANDS.labels(command.action.type).inc()
            sends.append((self.actions, encode(command)))
        pending = [await topic.send(key=raw_key, value=value) for topic, value in sends]
        if acked:
            await asyncio.gather(*pending)  # raises when the broker refused one

    async def _dead_letter(self, event: EventT[bytes], reason: str, error: BaseException) -> None:
        message = event.message
        letter = dead_letter(
            service="enroller",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=reason,
            error=error,
            headers=message.headers,
        )
        metrics.DEAD_LETTERS.labels(_short(message.topic)).inc()
        metrics.RECORDS.labels(_short(message.topic), "dead_lettered").inc()
        log.warning("record_dead_lettered", reason=reason, error_type=letter.error_type)
        try:
            await self.dead_letters.send(key=message.key, value=encode(letter))
        except Exception:
            log.exception("dead_letter_failed")

    def log_handled(self, handled: str, engine: ContactEngine) -> None:
        effects = engine.effects
        fields: dict[str, Any] = {}
        if effects.events:
            fields["decisions"] = [
                f"{e.decision.value}:{e.workflow_id}" + (f":{e.reason}" if e.reason else "")
                for e in effects.events
            ]
        if effects.commands:
            fields["dispatched"] = [c.action_id for c in effects.commands]
        for note in effects.notes:
            fields.setdefault("notes", []).append({"event": note.event, **note.fields})
        log.info(handled, **fields)


def _short(topic: str) -> str:
    return topic.rsplit(".", 1)[-1] if "." in topic else topic
