"""The faust wiring of the action runner: topics, tables, agents and web pages.

Agents only decode, call the pure handlers, produce and store. Every agent catches per
record (faust acks a record whose handler raised), so one bad record goes to dead-letters
and the stream goes on. Outputs are produced and acknowledged before the state that
records them is written, so a crash in between replays the input and re-emits the same
events (same ids, same idempotency key) rather than losing them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from faust.types import EventT, StreamT

from schemas.actions import ActionCommand
from schemas.contacts import ContactChange
from schemas.envelope import utcnow
from schemas.topics import (
    ACTION_RESULTS,
    ACTIONS,
    CONTACT_CHANGES,
    DEAD_LETTERS,
    SMS_INBOUND,
    SMS_REQUESTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
    TopicSpec,
)
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.commands import (
    CONSENT_UNREADABLE,
    handle_command,
    invalid_command_result,
    needs_consent,
    refuse,
)
from services.action_runner.consent import ConsentRecord, apply, decide_wide
from services.action_runner.emissions import Emission
from services.action_runner.idempotency import emission_id
from services.action_runner.inbound import decode_inbound, handle_inbound
from services.action_runner.internal import (
    CONSENT_COMMANDS,
    PHONE_INDEX,
    PhoneIndexUpdate,
    WideConsentCommand,
)
from services.action_runner.metrics import Metrics, reason_label
from services.action_runner.phone_index import (
    ContactNumbers,
    NumberEntry,
    apply_update,
    diff_numbers,
    touches_numbers,
)
from services.action_runner.phones import normalize
from services.action_runner.settings import RunnerSettings
from services.common.aio_kafka import aiokafka_options, faust_broker, faust_credentials
from services.common.catalog import Catalog
from services.common.codec import DecodeError, decode, encode
from services.common.dead_letters import dead_letter
from services.common.faust_app import App
from services.common.logging import get_logger

SERVICE = "action-runner"
OUTPUTS = (ACTION_RESULTS, CONTACT_CHANGES, SUBSCRIPTION_CHANGES, SMS_REQUESTS, SMS_STATUS)
RETRIES = (0.1, 0.5)  # backoff before each retry of a record whose handling raised

log = get_logger(__name__)
Handler = Callable[[Any], Awaitable[None]]


def store_options(settings: RunnerSettings) -> dict[str, Any] | None:
    """RocksDB through rocksdict, with a bounded block cache (rocksdict's default is 2 GiB
    per partition database)."""
    if not settings.action_runner_store.startswith("rocksdb"):
        return None
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.action_runner_rocksdb_cache_mb << 20,
    }


class ActionRunner:
    def __init__(
        self,
        settings: RunnerSettings,
        partitions: int,
        catalog: Catalog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        self.metrics = Metrics()
        self.ready = False
        prefix = settings.topic_prefix
        app_id = f"{prefix}action-runner"
        datadir = Path(settings.data_dir) / app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = App(
            app_id,
            broker=faust_broker(settings),
            broker_credentials=faust_credentials(settings),
            store=settings.action_runner_store,
            datadir=str(datadir),
            topic_partitions=partitions,
            topic_replication_factor=settings.replication_factor,
            topic_disable_leader=True,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            broker_session_timeout=settings.action_runner_session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.action_runner_session_timeout_s / 3),
            stream_wait_empty=False,
            web_enabled=True,
            web_port=settings.action_runner_port,
            web_bind=settings.action_runner_bind,
            web_host=settings.action_runner_bind,
            autodiscover=False,
        )
        self.topics: dict[str, Any] = {
            spec.name: self._topic(settings.topic(spec))
            for spec in (*OUTPUTS, ACTIONS, SMS_INBOUND, DEAD_LETTERS)
        }
        for name in (PHONE_INDEX, CONSENT_COMMANDS):
            self.topics[name] = self._topic(f"{app_id}-{name}", partitions=partitions)
        table = self._table
        self.consent = table("consent-ledger", partitions=partitions, help="contact -> ledger")
        self.answered = table("answered-actions", partitions=partitions, help="action_id")
        self.contact_numbers = table("contact-numbers", partitions=partitions)
        self.numbers = table("number-index", partitions=partitions, help="account:+E164")
        self.barrier = ConsentBarrier(
            self.topics[CONSENT_COMMANDS].get_topic_name(),
            settings.consent_barrier_timeout_s,
            aiokafka_options(settings),
            committed=self._committed_offset,
        )
        self.app.on_before_shutdown.connect(self._close_barrier)  # type: ignore[arg-type]
        agent = self.app.agent
        agent(self.topics[ACTIONS.name], name="run_actions", concurrency=1)(self.run_actions)
        agent(self.topics[CONSENT_COMMANDS], name="apply_consent_changes", concurrency=1)(
            self.apply_consent_changes
        )
        agent(
            self._topic(settings.topic(CONTACT_CHANGES)),
            name="index_contact_numbers",
            concurrency=1,
        )(self.index_contact_numbers)
        agent(self.topics[PHONE_INDEX], name="update_number_index", concurrency=1)(
            self.update_number_index
        )
        agent(self.topics[SMS_INBOUND.name], name="answer_replies", concurrency=1)(
            self.answer_replies
        )
        self.app.task(self._watch_readiness)
        self._pages()

    def _table(self, name: str, **kwargs: Any) -> Any:
        # A dict of its own per table: faust's RocksDB store pops keys out of it.
        return self.app.Table(name, options=store_options(self.settings), **kwargs)

    def _topic(self, name: str, partitions: int | None = None) -> Any:
        internal = partitions is not None
        return self.app.topic(
            name,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            internal=internal,
            retention=7 * 24 * 3600 if internal else None,
        )

    # ------------------------------------------------------------------ agents

    async def run_actions(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "run_actions", self._run_action)

    async def apply_consent_changes(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "apply_consent_changes", self._apply_consent_change)

    async def index_contact_numbers(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "index_contact_numbers", self._index_contact)

    async def update_number_index(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "update_number_index", self._update_number)

    async def answer_replies(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "answer_replies", self._answer_reply)

    async def _each(self, stream: StreamT[bytes], agent: str, handle: Handler) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                service=SERVICE,
                agent=agent,
                where=f"{message.topic}[{message.partition}]@{message.offset}",
            )
            started = time.perf_counter()
            try:
                await self._with_retries(handle, message)
            except DecodeError as exc:
                await self._dead_letter(message, exc.reason, exc)
            except Exception as exc:  # a bad record never stops the stream
                # No traceback: it could carry a number or a body past the log redaction.
                log.error("record_failed", error=f"{type(exc).__name__}: {exc}")
                await self._dead_letter(message, f"{type(exc).__name__}: {exc}", exc)
            finally:
                self.metrics.handle_seconds.labels(agent).observe(time.perf_counter() - started)

    async def _with_retries(self, handle: Handler, message: Any) -> None:
        for delay in (*RETRIES, None):
            try:
                await handle(message)
                return
            except DecodeError:
                raise
            except Exception as exc:
                if delay is None:
                    raise
                log.warning("record_retried", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ actions

    async def _run_action(self, message: Any) -> None:
        now = self.clock()
        try:
            command = decode(ActionCommand, message.value)
        except DecodeError as exc:
            result = invalid_command_result(message.value, exc.reason, now)
            if result is not None:  # e.g. an unknown action type: the enrollment goes on
                await self._emit_and_wait([Emission.of(ACTION_RESULTS, result)])
                self.metrics.actions.labels("invalid", result.outcome.value, "invalid").inc()
            raise
        structlog.contextvars.bind_contextvars(
            action_id=command.action_id,
            action=command.action.type,
            attempt=command.attempt,
            account_id=command.account_id,
            contact_id=command.contact_id,
            workflow_id=command.workflow_id,
        )
        prior = self.answered.get(command.action_id)
        if prior is not None and int(prior.get("attempt", 0)) >= command.attempt:
            self.metrics.replays.inc()
            log.info("action_replayed", outcome=prior.get("outcome"))
            return
        await self._await_definitions(command)
        consent: ConsentRecord | None = None
        fresh = True
        if needs_consent(command):
            fresh = await self.barrier.wait(message.partition)
            if fresh:
                consent = self._ledger(command.key)
            else:
                self.metrics.barrier_timeouts.inc()
                log.warning("consent_unreadable")
        if consent is None and command.action.type == "manage_subscription" and not fresh:
            # Never decide a subscription on a ledger that may miss a STOP.
            handled = refuse(command, now, CONSENT_UNREADABLE)
        else:
            handled = handle_command(
                command, self.catalog, consent, now, self.settings.max_segments
            )
        await self._emit_and_wait(handled.effects.emissions)
        if handled.effects.dead_letter:
            await self._dead_letter(message, handled.effects.dead_letter, None)
        if handled.consent_change is not None:
            change = handled.consent_change
            self.consent[command.key] = _dump(apply(self._ledger(command.key), change))
            self.metrics.consent_changes.labels(change.source.value, change.status.value).inc()
        result = handled.result
        self.answered[command.action_id] = {
            "attempt": command.attempt,
            "outcome": result.outcome.value,
            "event_id": result.event_id,
        }
        self.metrics.actions.labels(
            command.action.type, result.outcome.value, reason_label(result.reason)
        ).inc()
        log.info("action_handled", outcome=result.outcome.value, reason=result.reason)

    async def _await_definitions(self, command: ActionCommand) -> None:
        """A command may overtake the definitions it names by a moment: wait briefly."""
        catalog = self.catalog
        message_id = getattr(command.action, "message", None)
        await self._await(
            lambda: (
                catalog.account(command.account_id) is not None
                and catalog.workflow(command.account_id, command.workflow_id) is not None
                and (
                    message_id is None
                    or catalog.message(command.account_id, message_id) is not None
                )
            )
        )

    async def _await(self, known: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.settings.definitions_grace_s
        while not known() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ consent

    async def _apply_consent_change(self, message: Any) -> None:
        try:
            command = decode(WideConsentCommand, message.value)
            structlog.contextvars.bind_contextvars(
                account_id=command.account_id, contact_id=command.contact_id
            )
            change = decide_wide(
                self._ledger(command.key),
                command.status,
                account_id=command.account_id,
                contact_id=command.contact_id,
                source=command.source,
                source_id=command.source_id,
                phone_masked=command.phone_masked,
                event_id=emission_id(command.event_id, "subscription"),
                now=self.clock(),
            )
            if change is None:
                log.info("consent_unchanged", status=command.status.value)
                return
            # On the audit trail first: a crash before the ledger write replays this.
            await self._emit_and_wait([Emission.of(SUBSCRIPTION_CHANGES, change)])
            self.consent[command.key] = _dump(apply(self._ledger(command.key), change))
            self.metrics.consent_changes.labels(change.source.value, change.status.value).inc()
            log.info("consent_changed", status=change.status.value, source=change.source.value)
        finally:
            self.barrier.applied(message.partition, message.offset)

    def _ledger(self, key: str) -> ConsentRecord | None:
        raw = self.consent.get(key)
        return None if raw is None else ConsentRecord.model_validate(raw)

    # ------------------------------------------------------------------ numbers

    async def _index_contact(self, message: Any) -> None:
        change = decode(ContactChange, message.value)
        structlog.contextvars.bind_contextvars(
            account_id=change.account_id, contact_id=change.contact_id
        )
        if not touches_numbers(change):
            log.debug("contact_change_skipped")
            return
        # National formats need the account's region: give a new account a moment to arrive.
        await self._await(lambda: self.catalog.account(change.account_id) is not None)
        account = self.catalog.account(change.account_id)
        region = account.spec.default_region if account else None
        raw = self.contact_numbers.get(change.key)
        known = None if raw is None else ContactNumbers.model_validate(raw)
        after, updates = diff_numbers(known, change, lambda value: normalize(value, region))
        await self._emit_and_wait([Emission.of(PHONE_INDEX, u) for u in updates])
        self.contact_numbers[change.key] = _dump(after)
        log.info("contact_numbers_indexed", numbers=len(after.numbers), updates=len(updates))

    async def _update_number(self, message: Any) -> None:
        update = decode(PhoneIndexUpdate, message.value)
        structlog.contextvars.bind_contextvars(
            account_id=update.account_id, contact_id=update.contact_id, phone=update.phone
        )
        entry, command = apply_update(self._number(update.key), update)
        if command is not None:
            await self._emit_and_wait([Emission.of(CONSENT_COMMANDS, command)])
        self.numbers[update.key] = _dump(entry)
        log.info("number_index_updated", present=update.present, inherited_opt_out=bool(command))

    async def _answer_reply(self, message: Any) -> None:
        event = decode_inbound(message.value)
        structlog.contextvars.bind_contextvars(account_id=event.account_id, phone=event.key)
        await self._await(lambda: self.catalog.account(event.account_id) is not None)
        account = self.catalog.account(event.account_id)
        handled = handle_inbound(event, self._number(event.key), account, self.clock())
        await self._emit_and_wait(handled.effects.emissions)
        if handled.entry is not None:
            self.numbers[event.key] = _dump(handled.entry)
        self.metrics.inbound.labels(handled.kind).inc()
        log.info("inbound_handled", kind=handled.kind, contacts=handled.contacts)

    def _number(self, key: str) -> NumberEntry | None:
        raw = self.numbers.get(key)
        return None if raw is None else NumberEntry.model_validate(raw)

    # ------------------------------------------------------------------ output

    async def _emit_and_wait(self, emissions: Iterable[Emission]) -> None:
        """Produce in order, then wait until the broker has acknowledged every one."""
        pending = []
        for emission in emissions:
            name = emission.topic.name if isinstance(emission.topic, TopicSpec) else emission.topic
            pending.append(
                await self.topics[name].send(
                    key=emission.key.encode(), value=encode(emission.event), force=True
                )
            )
        if pending:
            await asyncio.gather(*pending)

    async def _dead_letter(self, message: Any, reason: str, error: BaseException | None) -> None:
        letter = dead_letter(
            service=SERVICE,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=reason,
            error=error,
        )
        await self.topics[DEAD_LETTERS.name].send(key=message.key, value=encode(letter), force=True)
        self.metrics.dead_letters.labels(message.topic).inc()
        log.warning("record_dead_lettered", reason=reason)

    # ------------------------------------------------------------------ web

    def _committed_offset(self, partition: int) -> int:
        """The group's committed offset of a consent-command partition (0 if none yet).

        faust keeps it per partition from assignment on; it has no public accessor."""
        try:
            offsets = getattr(self.app.consumer, "_committed_offset")  # noqa: B009
        except Exception:  # the consumer is not started yet
            return 0
        topic = self.barrier.topic
        for tp, offset in list(offsets.items()):
            if tp.topic == topic and tp.partition == partition:
                return int(offset or 0)
        return 0

    async def _close_barrier(self, app: Any, *args: Any, **kwargs: Any) -> None:
        await self.barrier.close()

    async def _watch_readiness(self) -> None:
        while not self.ready:
            await asyncio.sleep(0.1)
            app = self.app
            recovery = getattr(app.tables, "recovery", None)
            if app.rebalancing or recovery is None or not recovery.completed.is_set():
                continue
            assignment = app.consumer.assignment()
            if not assignment:
                continue
            self.ready = True
            structlog.contextvars.clear_contextvars()
            log.info(
                "service_ready",
                service=SERVICE,
                assigned=len(assignment),
                port=self.settings.action_runner_port,
            )

    def _pages(self) -> None:
        # faust calls a page handler as ``handler(view, request)``: plain functions, then.
        async def healthz(web: Any, request: Any) -> Any:
            return web.json({"ok": self.ready}, status=200 if self.ready else 503)

        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(self.metrics.render(), content_type="text/plain; version=0.0.4")

        self.app.page("/healthz")(healthz)
        self.app.page("/metrics")(metrics)


def _dump(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(mode="json"))
