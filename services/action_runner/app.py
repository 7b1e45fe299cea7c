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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from faust.types import EventT, StreamT

from schemas.actions import ActionCommand
from schemas.contacts import ContactChange
from schemas.definitions import ManageSubscription, SendSms
from schemas.envelope import utcnow
from schemas.topics import (
    ACTION_RESULTS,
    ACTIONS,
    CONTACT_CHANGES,
    DEAD_LETTERS,
    OPT_OUTS,
    SMS_INBOUND,
    SMS_REQUESTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
    TopicSpec,
)
from services.action_runner import answers
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.commands import (
    CONSENT_PENDING,
    CONSENT_UNREADABLE,
    Handled,
    defer_send,
    handle_command,
    invalid_command_result,
    refuse,
)
from services.action_runner.consent import ConsentRecord, apply, decide_wide
from services.action_runner.emissions import Emission
from services.action_runner.frequency import SentLog
from services.action_runner.idempotency import emission_id
from services.action_runner.inbound import decode_inbound, handle_inbound
from services.action_runner.internal import (
    CONSENT_COMMANDS,
    PHONE_INDEX,
    PHONE_REINDEX,
    ContactReindex,
    PhoneIndexUpdate,
    WideConsentCommand,
)
from services.action_runner.metrics import Metrics, reason_label
from services.action_runner.number_consent import NumberConsent
from services.action_runner.phone_index import (
    ContactNumbers,
    NumberEntry,
    apply_update,
    diff_numbers,
    reindex_commands,
    touches_numbers,
)
from services.action_runner.phones import normalize
from services.action_runner.settings import RunnerSettings
from services.common.aio_kafka import aiokafka_options, faust_broker, faust_credentials
from services.common.catalog import Catalog
from services.common.codec import DecodeError, decode, encode
from services.common.dead_letters import REPLAYED_FROM_HEADER, dead_letter, header_value
from services.common.faust_app import App
from services.common.logging import get_logger
from services.common.number_opt_outs import NumberOptOuts

SERVICE = "action-runner"
OUTPUTS = (
    ACTION_RESULTS,
    CONTACT_CHANGES,
    SUBSCRIPTION_CHANGES,
    SMS_REQUESTS,
    SMS_STATUS,
    OPT_OUTS,
)
RETRIES = (0.1, 0.5)  # backoff before each retry of a record whose handling raised
# A consent record (STOP, START) is never given up: its partition retries, this far apart.
BLOCKING_RETRIES = (0.1, 0.5, 1.0, 2.0, 5.0)

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
        for name in (PHONE_INDEX, CONSENT_COMMANDS, PHONE_REINDEX):
            self.topics[name] = self._topic(f"{app_id}-{name}", partitions=partitions)
        table = self._table
        self.consent = table("consent-ledger", partitions=partitions, help="contact -> ledger")
        self.answered = table("answered-actions", partitions=partitions, help="action_id")
        self.sent_sms = table("sent-sms", partitions=partitions, help="contact -> SMS requested")
        self.contact_numbers = table("contact-numbers", partitions=partitions)
        self.numbers = table("number-index", partitions=partitions, help="account:+E164")
        self.partitions = partitions
        self.barrier = self._barrier(self.topics[CONSENT_COMMANDS].get_topic_name())
        # Replies not yet handled may hold a STOP: a send to their number waits for them.
        self.replies = self._barrier(settings.topic(SMS_INBOUND))
        self.number_consent = NumberConsent(
            self.replies,
            NumberOptOuts(settings.topic(OPT_OUTS), aiokafka_options(settings)),
            partitions,
            self._reads,
            settings.consent_barrier_timeout_s,
        )
        self.reply_failures_left = settings.inject_reply_failures
        # Two agents read, await and write the number-index table: without this a reply's
        # write could undo a contact joining the number in between.
        self.numbers_lock = asyncio.Lock()
        self.indexed_regions: dict[str, str] = {}  # account -> region its contacts were read in
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
        agent(self.topics[PHONE_REINDEX], name="reindex_contact_numbers", concurrency=1)(
            self.reindex_contact_numbers
        )
        agent(self.topics[PHONE_INDEX], name="update_number_index", concurrency=1)(
            self.update_number_index
        )
        agent(self.topics[SMS_INBOUND.name], name="answer_replies", concurrency=1)(
            self.answer_replies
        )
        self.app.task(self._follow_opt_outs)
        self.app.task(self._watch_regions)
        self.app.task(self._watch_readiness)
        self._pages()

    def _barrier(self, topic: str) -> ConsentBarrier:
        return ConsentBarrier(
            topic,
            self.settings.consent_barrier_timeout_s,
            aiokafka_options(self.settings),
            committed=lambda partition: self._committed_offset(topic, partition),
        )

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
        await self._each(stream, "apply_consent_changes", self._apply_consent_change, blocking=True)

    async def index_contact_numbers(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "index_contact_numbers", self._index_contact)

    async def reindex_contact_numbers(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "reindex_contact_numbers", self._reindex_contact)

    async def update_number_index(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "update_number_index", self._update_number)

    async def answer_replies(self, stream: StreamT[bytes]) -> None:
        await self._each(stream, "answer_replies", self._answer_reply, blocking=True)

    async def _each(
        self, stream: StreamT[bytes], agent: str, handle: Handler, blocking: bool = False
    ) -> None:
        """Handles each record; ``blocking``: a record that keeps failing (not undecodable)
        holds its partition and is retried until it succeeds, never skipped."""
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
                await self._with_retries(handle, message, blocking)
            except DecodeError as exc:
                await self._dead_letter(message, exc.reason, exc)
            except Exception as exc:  # a bad record never stops the stream
                # No traceback: it could carry a number or a body past the log redaction.
                log.error("record_failed", error=f"{type(exc).__name__}: {exc}")
                await self._dead_letter(message, f"{type(exc).__name__}: {exc}", exc)
            finally:
                self.metrics.handle_seconds.labels(agent).observe(time.perf_counter() - started)

    async def _with_retries(self, handle: Handler, message: Any, blocking: bool) -> None:
        retries = 0
        while True:
            try:
                await handle(message)
                return
            except DecodeError:
                raise
            except Exception as exc:
                if not blocking and retries >= len(RETRIES):
                    raise
                delays = BLOCKING_RETRIES if blocking else RETRIES
                delay = delays[min(retries, len(delays) - 1)]
                retries += 1
                log.warning(
                    "record_retried",
                    error=f"{type(exc).__name__}: {exc}",
                    retries=retries,
                    blocking=blocking,
                )
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
        replayed_from = header_value(message.headers, REPLAYED_FROM_HEADER)
        if prior is not None and not answers.runs(prior, command.attempt, replayed_from):
            self.metrics.replays.inc()
            log.info("action_replayed", outcome=prior.get("outcome"))
            return
        if prior is not None:  # a replayed dead letter: its cause may be fixed now
            log.info("action_rerun", replayed_from=replayed_from, outcome=prior.get("outcome"))
        await self._await_definitions(command)
        handled = await self._decide(command, message.partition, now)
        await self._emit_and_wait(handled.effects.emissions)
        if handled.effects.dead_letter:
            await self._dead_letter(message, handled.effects.dead_letter, None)
        if handled.consent_change is not None:
            change = handled.consent_change
            self.consent[command.key] = _dump(apply(self._ledger(command.key), change))
            self.metrics.consent_changes.labels(change.source.value, change.status.value).inc()
        if handled.sent is not None:
            self.sent_sms[command.key] = _dump(handled.sent)
        result = handled.result
        self.answered[command.action_id] = answers.answer(
            command.attempt, result, bool(handled.effects.dead_letter), replayed_from
        )
        self.metrics.actions.labels(
            command.action.type, result.outcome.value, reason_label(result.reason)
        ).inc()
        log.info("action_handled", outcome=result.outcome.value, reason=result.reason)

    async def _decide(self, command: ActionCommand, partition: int, now: datetime) -> Handled:
        """Runs the action once the consent it reads is current; fails closed when not."""
        action = command.action
        if isinstance(action, SendSms):
            account = self.catalog.account(command.account_id)
            if not await self.number_consent.current(command.account_id, account, command.contact):
                self.metrics.barrier_timeouts.inc()
                log.warning("opt_outs_unreadable")
                until = now + timedelta(seconds=self.settings.consent_retry_s)
                return defer_send(command, now, until, CONSENT_PENDING)
            sent = self.sent_sms.get(command.key)
            return handle_command(
                command,
                self.catalog,
                self._ledger(command.key),
                now,
                self.settings.max_segments,
                opted_out=self.number_consent.opted_out,
                sent=None if sent is None else SentLog.model_validate(sent),
                link_secret=self.settings.link_secret.get_secret_value().encode(),
            )
        consent: ConsentRecord | None = None
        if isinstance(action, ManageSubscription):
            if not await self.barrier.wait(partition):
                self.metrics.barrier_timeouts.inc()
                log.warning("consent_unreadable")
                # Never decide a subscription on a ledger that may miss a STOP.
                return refuse(command, now, CONSENT_UNREADABLE)
            consent = self._ledger(command.key)
        return handle_command(command, self.catalog, consent, now, self.settings.max_segments)

    def _reads(self, topic: str, partition: int) -> bool:
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # not started yet
            return False
        return any(tp.topic == topic and tp.partition == partition for tp in assignment)

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
        except DecodeError:
            self.barrier.applied(message.partition, message.offset)  # nothing to apply, ever
            raise
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
            provider_message_id=command.provider_message_id,
        )
        if change is None:
            log.info("consent_unchanged", status=command.status.value)
        else:
            # On the audit trail first: a crash before the ledger write replays this.
            await self._emit_and_wait([Emission.of(SUBSCRIPTION_CHANGES, change)])
            self.consent[command.key] = _dump(apply(self._ledger(command.key), change))
            self.metrics.consent_changes.labels(change.source.value, change.status.value).inc()
            log.info("consent_changed", status=change.status.value, source=change.source.value)
        # Only now: an action waiting for this partition must see the change (fail closed).
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
        # National formats need the account's region: give a new account a moment to arrive
        # (one that comes later has its contacts read again, see _watch_regions).
        await self._await(lambda: self.catalog.account(change.account_id) is not None)
        await self._index(change)

    async def _reindex_contact(self, message: Any) -> None:
        command = decode(ContactReindex, message.value)
        structlog.contextvars.bind_contextvars(
            account_id=command.account_id, contact_id=command.contact_id
        )
        change = ContactChange(
            event_id=emission_id(command.event_id, "reindex"),
            account_id=command.account_id,
            contact_id=command.contact_id,
            properties={},
        )
        await self._index(change)

    async def _index(self, change: ContactChange) -> None:
        region = self._region(change.account_id)
        raw = self.contact_numbers.get(change.key)
        known = None if raw is None else ContactNumbers.model_validate(raw)
        after, updates = diff_numbers(known, change, lambda value: normalize(value, region), region)
        await self._emit_and_wait([Emission.of(PHONE_INDEX, u) for u in updates])
        self.contact_numbers[change.key] = _dump(after)
        log.info("contact_numbers_indexed", numbers=len(after.numbers), updates=len(updates))
        if after.raw and self._region(change.account_id) != region:
            # The account arrived (or changed) meanwhile, maybe after _watch_regions looked.
            again = ContactChange(
                event_id=emission_id(change.event_id, self._region(change.account_id)),
                account_id=change.account_id,
                contact_id=change.contact_id,
                properties={},
            )
            await self._index(again)

    def _region(self, account_id: str) -> str | None:
        account = self.catalog.account(account_id)
        return account.spec.default_region if account else None

    async def _watch_regions(self) -> None:
        """When an account arrives or its default_region changes, have its contacts' numbers
        read again (through a topic: tables are written only by agents)."""
        while True:
            await asyncio.sleep(1.0)
            if not self.ready:
                continue
            try:
                await self._request_reindex()
            except Exception as exc:  # tried again on the next tick
                log.error("reindex_failed", error=f"{type(exc).__name__}: {exc}")

    async def _request_reindex(self) -> None:
        regions = {a: acc.spec.default_region for a, acc in self.catalog.accounts.items()}
        changed = {a for a, r in regions.items() if self.indexed_regions.get(a) != r}
        if not changed:
            return
        commands = reindex_commands(list(self.contact_numbers.items()), regions, changed)
        await self._emit_and_wait([Emission.of(PHONE_REINDEX, c) for c in commands])
        self.indexed_regions.update({a: regions[a] for a in changed})
        if commands:
            log.info("contact_numbers_reindex_requested", contacts=len(commands))

    async def _update_number(self, message: Any) -> None:
        update = decode(PhoneIndexUpdate, message.value)
        structlog.contextvars.bind_contextvars(
            account_id=update.account_id, contact_id=update.contact_id, phone=update.phone
        )
        async with self.numbers_lock:
            entry, command = apply_update(self._number(update.key), update)
            if command is not None:
                await self._emit_and_wait([Emission.of(CONSENT_COMMANDS, command)])
            self.numbers[update.key] = _dump(entry)
        log.info("number_index_updated", present=update.present, inherited_opt_out=bool(command))

    async def _answer_reply(self, message: Any) -> None:
        try:
            event = decode_inbound(message.value)
        except DecodeError:
            self.replies.applied(message.partition, message.offset)
            raise
        structlog.contextvars.bind_contextvars(account_id=event.account_id, phone=event.key)
        await self._await(lambda: self.catalog.account(event.account_id) is not None)
        account = self.catalog.account(event.account_id)
        if self.reply_failures_left > 0:
            self.reply_failures_left -= 1
            raise RuntimeError("injected failure (inject_reply_failures)")
        async with self.numbers_lock:
            handled = handle_inbound(event, self._number(event.key), account, self.clock())
            # The number's opt-out first: from then on the gates and the sender see it.
            await self._emit_and_wait(handled.effects.emissions)
            if handled.entry is not None:
                self.numbers[event.key] = _dump(handled.entry)
        self.replies.applied(message.partition, message.offset)
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
            headers=message.headers,
        )
        await self.topics[DEAD_LETTERS.name].send(key=message.key, value=encode(letter), force=True)
        self.metrics.dead_letters.labels(message.topic).inc()
        log.warning("record_dead_lettered", reason=reason)

    # ------------------------------------------------------------------ web

    def _committed_offset(self, topic: str, partition: int) -> int:
        """The group's committed offset of a partition this instance reads (0 if none yet).

        faust keeps it per partition from assignment on; it has no public accessor."""
        try:
            offsets = getattr(self.app.consumer, "_committed_offset")  # noqa: B009
        except Exception:  # the consumer is not started yet
            return 0
        for tp, offset in list(offsets.items()):
            if tp.topic == topic and tp.partition == partition:
                return int(offset or 0)
        return 0

    async def _close_barrier(self, app: Any, *args: Any, **kwargs: Any) -> None:
        await self.barrier.close()
        await self.number_consent.close()

    async def _follow_opt_outs(self) -> None:
        await self.number_consent.opt_outs.start(self.partitions)

    async def _watch_readiness(self) -> None:
        while not self.ready:
            await asyncio.sleep(0.1)
            app = self.app
            recovery = getattr(app.tables, "recovery", None)
            if app.rebalancing or recovery is None or not recovery.completed.is_set():
                continue
            if not self.number_consent.opt_outs.loaded.is_set():
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
