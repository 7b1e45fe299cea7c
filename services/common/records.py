"""The record pipeline: one batch-shaped loop on aiokafka that every service can run.

Per partition batch, always in this order:

1. poll a batch per partition (``getmany``; one worker per partition takes what was
   fetched for it, so each partition is handled in order and the partitions in parallel);
2. decide every record of it in order, in memory: ``Handler.decide`` reads state through the
   ``Batch`` (so later records see what earlier ones changed) and collects outputs and
   state writes; nothing is written yet;
3. send all outputs without awaiting each;
4. await the acks once;
5. then write state: the local store (which the partition's next batch reads) and the
   changelog records, whose acks the next batch does not wait for;
6. then commit offsets (by hand, from the loop) once the changelog records are acknowledged.

While a batch is being sent, the partition's next batch is prepared (decoded, its barrier
and definitions awaited), so those waits overlap the acks.

A crash anywhere before 6 replays the batch: its outputs are sent again with the same ids
(handlers derive ids from their inputs), never lost. A crash between 4 and 5 cannot lose
state either: the replay decides again and re-emits.

Per record the skeleton is decode -> decide -> dead-letter -> metrics -> one log line.
Undecodable records and ``PermanentError`` go to ``dead-letters`` (with the record's
headers) and the partition goes on. ``TransientError`` stops the partition at that record:
what came before it is written and committed, the rest is retried with backoff, never
skipped. A handler marked ``blocking`` treats any failure that way (fail closed).

Partitions of co-partitioned topics with the same number land on the same instance (the
range assignor) and share that partition's state. Each store of a partition has a lock,
taken from decide to the end of the state write by every batch whose handler reads or
writes that store (``Handler.stores``), so handlers of disjoint stores never wait for each
other's acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.common.codec import DecodeError, encode
from services.common.dead_letters import dead_letter_of
from services.common.errors import PermanentError, TransientError
from services.common.logging import get_logger
from services.common.number_opt_outs import partition_of
from services.common.state_store import Store, StoreFactory, decode_value, encode_value

log = get_logger(__name__)

# Backoff before each retry of a partition stopped by a TransientError (the last repeats).
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


@dataclass
class Handled:
    """The one log line of a handled record."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    debug: bool = False  # a no-op record: logged at DEBUG only


class Batch:
    """What one batch of one partition decided: outputs in order and state writes (last
    write per key wins), readable by the records after the one that wrote them."""

    def __init__(
        self,
        stores: Mapping[str, Store],
        letter: Callable[[ConsumerRecord[Any, Any], str], None] | None = None,
        held: Iterable[str] = (),
    ) -> None:
        self._stores = stores
        self._letter = letter
        # The stores whose locks the batch holds (empty: all); no other may be touched.
        self._held = frozenset(held)
        self.outputs: list[Output] = []
        self.writes: dict[tuple[str, str], Any] = {}
        self._mark = 0
        self._undo: dict[tuple[str, str], tuple[bool, Any]] = {}

    def _check(self, store: str) -> None:
        if self._held and store not in self._held:
            raise RuntimeError(f"store {store} is not among the handler's stores")

    def get(self, store: str, key: str) -> Any | None:
        self._check(store)
        written = self.writes.get((store, key), _MISSING)
        return self._stores[store].get(key) if written is _MISSING else written

    def put(self, store: str, key: str, value: Any | None) -> None:
        self._check(store)
        slot = (store, key)
        if slot not in self._undo:
            self._undo[slot] = (slot in self.writes, self.writes.get(slot))
        self.writes[slot] = value

    def emit(
        self, topic: str, key: str | bytes | None, value: Any, partition: int | None = None
    ) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        raw = value if value is None or isinstance(value, bytes) else encode(value)
        self.outputs.append(Output(topic, raw_key, raw, partition))

    def dead_letter(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        """``record`` was handled (its outputs stand) but names what does not exist: it goes
        to dead-letters too, for a replay once that is fixed."""
        if self._letter is not None:
            self._letter(record, reason)

    def begin(self) -> None:
        """A record starts: ``rollback`` undoes what it did if it fails."""
        self._mark = len(self.outputs)
        self._undo = {}

    def rollback(self) -> None:
        del self.outputs[self._mark :]
        for slot, (existed, value) in self._undo.items():
            if existed:
                self.writes[slot] = value
            else:
                self.writes.pop(slot, None)
        self._undo = {}


_MISSING = object()


def _where(record: ConsumerRecord[Any, Any]) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class Handler:
    """What a service does with the records of one topic. ``decide`` must not await: the
    batch is decided in memory and written afterwards."""

    name = "records"
    blocking = False  # any failure holds the partition (retried, never skipped)
    stores: tuple[str, ...] = ()  # the stores it reads or writes; () means all of them

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Any:
        return record.value

    def invalid(self, record: ConsumerRecord[bytes, bytes], reason: str, batch: Batch) -> None:
        """An undecodable record, before it is dead-lettered: extra outputs, if any."""

    async def prepare(self, partition: int, items: Sequence[Any]) -> Any:
        """Awaited before the batch is decided (barriers, definitions); returns the context
        ``decide`` gets for the whole batch."""
        return None

    def decide(
        self, item: Any, record: ConsumerRecord[bytes, bytes], batch: Batch, context: Any
    ) -> Handled:
        raise NotImplementedError

    def done(self, partition: int, next_offset: int) -> None:
        """Everything before ``next_offset`` is decided, sent and its state written."""


class Sender:
    """Sends outputs in order without awaiting each, then awaits all acks once.

    Records are appended to one batch per topic partition (aiokafka's ``create_batch``), which
    costs a fraction of a ``send()`` per record; keys are partitioned as Kafka's default
    partitioner does (murmur2), so keyed records land where any other client would put them.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, int] = {}

    async def _count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self.producer.partitions_for(topic))
        return count

    async def send(self, outputs: Iterable[Output]) -> None:
        builders: dict[tuple[str, int], Any] = {}
        pending = []
        for output in outputs:
            partition = output.partition
            if partition is None:
                count = await self._count(output.topic)
                partition = 0 if output.key is None else partition_of(output.key, count)
            slot = (output.topic, partition)
            builder = builders.get(slot)
            if builder is None:
                builder = builders[slot] = self.producer.create_batch()
            if builder.append(key=output.key, value=output.value, timestamp=None) is None:
                # Full: send it (order within the partition is kept) and start another.
                pending.append(await self._submit(builder, slot))
                builder = builders[slot] = self.producer.create_batch()
                if builder.append(key=output.key, value=output.value, timestamp=None) is None:
                    raise PermanentError(f"a record too large for one batch on {output.topic}")
        for slot, builder in builders.items():
            pending.append(await self._submit(builder, slot))
        if pending:
            await asyncio.gather(*pending)

    async def _submit(self, builder: Any, slot: tuple[str, int]) -> Any:
        return await self.producer.send_batch(builder, slot[0], partition=slot[1])


Prepared = tuple[list[Any], Any]  # decoded records (or their DecodeError), prepare()'s context


class PipelineMetrics(Protocol):
    def dead_lettered(self, topic: str) -> None: ...
    def batch_handled(self, handler: str, records: int, seconds: float) -> None: ...


class PartitionedState:
    """Named stores per partition number, each backed by a compacted changelog topic with
    the inputs' partitioning (a store's partition N is written to changelog partition N)."""

    def __init__(
        self,
        changelogs: Mapping[str, str],
        open_store: StoreFactory,
        raw: Iterable[str] = (),
    ) -> None:
        self.changelogs = dict(changelogs)  # store name -> changelog topic
        self._open = open_store
        # Stores whose values are bytes their service encodes itself (not JSON values).
        self.raw = frozenset(raw)
        self._parts: dict[int, dict[str, Store]] = {}

    def of(self, partition: int) -> dict[str, Store]:
        stores = self._parts.get(partition)
        if stores is None:
            stores = self._parts[partition] = {n: self._open(n, partition) for n in self.changelogs}
        return stores

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    def items(self, name: str) -> Iterable[tuple[str, Any]]:
        for partition in list(self._parts):
            yield from self._parts[partition][name].items()

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            for store in self._parts.pop(partition, {}).values():
                store.close()

    async def restore(self, partitions: Iterable[int], client_options: Mapping[str, Any]) -> int:
        """Fresh stores for ``partitions``, rebuilt from their changelogs; returns the number
        of changelog records read."""
        partitions = sorted(set(partitions))
        self.drop(partitions)
        stores = {p: self.of(p) for p in partitions}
        tps = {
            TopicPartition(topic, p): name
            for name, topic in self.changelogs.items()
            for p in partitions
        }
        if not tps:
            return 0
        reader = AIOKafkaConsumer(**client_options, enable_auto_commit=False)
        await reader.start()
        read = 0
        try:
            reader.assign(list(tps))
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(list(tps))
            waiting = {tp for tp, end in ends.items() if end > 0}
            while waiting:
                batches = await reader.getmany(*waiting, timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    name = tps[tp]
                    store = stores[tp.partition][name]
                    raw = name in self.raw
                    for record in records:
                        if record.key is not None:
                            value = record.value if raw else decode_value(record.value)
                            store.put(record.key.decode(), value, record.value)
                            read += 1
                for tp in list(waiting):
                    if await reader.position(tp) >= ends[tp]:
                        waiting.discard(tp)
        finally:
            await reader.stop()
        return read

    def apply(self, partition: int, writes: Mapping[tuple[str, str], Any]) -> list[Output]:
        """Writes the local store (what the next batches of the partition read); returns the
        changelog records of the same writes (each value encoded once, for both)."""
        stores = self.of(partition)
        changelog = []
        for (name, key), value in writes.items():
            raw = value if name in self.raw else encode_value(value)
            stores[name].put(key, value, raw)
            changelog.append(Output(self.changelogs[name], key.encode(), raw, partition))
        return changelog


class RecordPipeline:
    def __init__(
        self,
        *,
        service: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handlers: Mapping[str, Handler],
        state: PartitionedState,
        dead_letter_topic: str,
        metrics: PipelineMetrics,
        client_options: Mapping[str, Any],
        max_records: int = 1000,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.service = service
        self.consumer = consumer
        self.producer = producer
        self.sender = Sender(producer)
        self.handlers = dict(handlers)  # full topic name -> handler
        self.state = state
        self.dead_letter_topic = dead_letter_topic
        self.metrics = metrics
        self.client_options = dict(client_options)
        self.max_records = max_records
        self.retry_delays = tuple(retry_delays)
        self.assigned = asyncio.Event()  # set once the first assignment is restored
        self.listeners: list[RebalanceHooks] = []
        # Called between steps 4 and 5 (fault injection: a crash at the worst moment).
        self.outputs_acked: Callable[[Handler, int], None] | None = None
        self.max_backlog = max_records * 4
        self.settle_timeout_s = 5.0
        self._queued: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
        self._inflight: dict[TopicPartition, asyncio.Task[None]] = {}
        self._flushing: set[TopicPartition] = set()
        self._revoking: set[TopicPartition] = set()
        self._ahead: dict[TopicPartition, tuple[list[ConsumerRecord[Any, Any]], Any]] = {}
        self._persisting: dict[TopicPartition, asyncio.Task[None]] = {}
        self._to_commit: dict[TopicPartition, int] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._retries: dict[TopicPartition, int] = {}
        self._stopping = False

    # ------------------------------------------------------------------ loop

    def subscribe(self) -> None:
        self.consumer.subscribe(list(self.handlers), listener=_Rebalance(self))

    async def run(self) -> None:
        """Polls and dispatches until ``stop()``. Everything fetched is taken at once (the
        fetcher stops fetching from a broker while any partition's records wait in it) and
        queued per partition; one worker per partition takes its queue a batch at a time."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=self.max_records)
            for tp, records in batches.items():
                if not records or self._stopping:
                    continue
                queued = self._queued.setdefault(tp, [])
                queued.extend(records)
                if len(queued) >= self.max_backlog:
                    self.consumer.pause(tp)  # resumed once its worker caught up
                if tp not in self._inflight:
                    self._inflight[tp] = loop.create_task(self._work(tp))
            await self._commit()

    def _halted(self, tp: TopicPartition) -> bool:
        return self._stopping or tp in self._revoking

    def _take(self, tp: TopicPartition) -> list[ConsumerRecord[Any, Any]]:
        records = self._queued.pop(tp, [])
        if len(records) > self.max_records:
            self._queued[tp] = records[self.max_records :]
            records = records[: self.max_records]
        if tp in self.consumer.paused() and len(self._queued.get(tp, ())) < self.max_backlog:
            self.consumer.resume(tp)
        return records

    async def _work(self, tp: TopicPartition) -> None:
        try:
            while (tp in self._ahead or self._queued.get(tp)) and not self._halted(tp):
                ahead = self._ahead.pop(tp, None)
                if ahead is not None:
                    await self._process(tp, ahead[0], ahead[1])
                else:
                    await self._process(tp, self._take(tp))
        finally:
            # At once, not in a done callback: records queued after the last look at the
            # queue must find no worker, so that the loop starts one for them.
            if self._inflight.get(tp) is asyncio.current_task():
                del self._inflight[tp]

    def _look_ahead(self, tp: TopicPartition, handler: Handler) -> None:
        """Prepares the partition's next batch (its barrier, its definitions) while this one
        is being sent: the waits overlap the acks."""
        if tp in self._ahead or not self._queued.get(tp) or self._halted(tp):
            return
        records = self._take(tp)
        task = asyncio.get_running_loop().create_task(self._prepare(tp, handler, records))
        self._ahead[tp] = (records, task)

    async def stop(self) -> None:
        self._stopping = True
        await self._settle({*self._inflight, *self._ahead, *self._persisting})
        await self._commit()

    # ------------------------------------------------------------------ batches

    async def _process(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord[Any, Any]],
        prepared: asyncio.Task[Prepared] | None = None,
    ) -> None:
        handler = self.handlers[tp.topic]
        start = 0
        while start < len(records) and not self._halted(tp):
            failed = False
            try:
                start = await self._run_batch(tp, handler, records, start, prepared)
                prepared = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # outputs not acknowledged, a barrier that broke: again
                failed = True
                prepared = None
                log.error("batch_failed", agent=handler.name, error=f"{type(exc).__name__}: {exc}")
            if start < len(records) or failed:
                retries = self._retries.get(tp, 0)
                self._retries[tp] = retries + 1
                await asyncio.sleep(self.retry_delays[min(retries, len(self.retry_delays) - 1)])
            else:
                self._retries.pop(tp, None)

    async def _run_batch(
        self,
        tp: TopicPartition,
        handler: Handler,
        records: list[ConsumerRecord[Any, Any]],
        start: int,
        prepared: asyncio.Task[Prepared] | None = None,
    ) -> int:
        """Decides, sends and writes ``records[start:]`` up to the first transient failure;
        returns the index of the first record not done."""
        todo = records[start:]
        started = time.perf_counter()
        if prepared is not None and start == 0:
            items, context = await prepared
        else:
            items, context = await self._prepare(tp, handler, todo)
        async with self._holding(tp.partition, handler.stores):
            batch = Batch(
                self.state.of(tp.partition),
                lambda record, reason: self._dead_letter(
                    batch, handler, record, reason, None, _where(record)
                ),
                handler.stores,
            )
            stop_at = len(todo)
            for index, (record, item) in enumerate(zip(todo, items, strict=True)):
                if not self._decide(handler, record, item, batch, context):
                    stop_at = index
                    break
            if stop_at == 0:
                return start
            if stop_at == len(todo):
                self._look_ahead(tp, handler)
            self._flushing.add(tp)
            try:
                await self.sender.send(batch.outputs)  # steps 3 and 4
                if self.outputs_acked is not None:
                    self.outputs_acked(handler, stop_at)
                # Step 5: the local store at once (the next batch reads it), the changelog in
                # the background; step 6 waits for the changelog's acks.
                changelog = self.state.apply(tp.partition, batch.writes)
            finally:
                self._flushing.discard(tp)
        next_offset = todo[stop_at - 1].offset + 1
        self._persist(tp, changelog, next_offset)
        handler.done(tp.partition, next_offset)
        self.metrics.batch_handled(handler.name, stop_at, time.perf_counter() - started)
        return start + stop_at

    async def _prepare(
        self, tp: TopicPartition, handler: Handler, records: list[ConsumerRecord[Any, Any]]
    ) -> Prepared:
        items: list[Any] = []
        for record in records:
            try:
                items.append(handler.decode(record))
            except DecodeError as exc:
                items.append(exc)
        context = await handler.prepare(
            tp.partition, [i for i in items if not isinstance(i, DecodeError)]
        )
        return items, context

    @contextlib.asynccontextmanager
    async def _holding(self, partition: int, stores: Sequence[str]) -> AsyncIterator[None]:
        """The locks of ``stores`` (all: empty) of ``partition``, always taken in one order."""
        names = sorted(stores or self.state.changelogs) or [""]
        locks = [self._locks.setdefault((partition, name), asyncio.Lock()) for name in names]
        async with contextlib.AsyncExitStack() as held:
            for lock in locks:
                await held.enter_async_context(lock)
            yield

    async def run_job(self, partition: int, decide: Callable[[Batch], None]) -> bool:
        """Work that no record started (a due timer, a scan), done like a batch of the
        partition: decided under its lock against its state, outputs acknowledged, then the
        state written. False when this instance does not hold the partition's state (the
        work is its owner's). Returns once the changelog has the state; raises when the
        outputs are refused: nothing is written."""
        async with self._holding(partition, ()):
            if partition not in self.state.partitions:
                return False
            batch = Batch(self.state.of(partition))
            decide(batch)
            await self.sender.send(batch.outputs)
            if partition not in self.state.partitions:  # revoked while sending
                return False
            changelog = self.state.apply(partition, batch.writes)
        jobs = TopicPartition("", partition)  # the partition's jobs: a chain of their own
        self._persist(jobs, changelog, None)
        await self.written(jobs)
        return True

    def _persist(
        self, tp: TopicPartition, changelog: list[Output], next_offset: int | None
    ) -> None:
        """Writes a batch's changelog records, then (after every earlier batch of the
        partition did the same) lets its offset be committed (a job has none)."""
        previous = self._persisting.get(tp)
        task = asyncio.get_running_loop().create_task(
            self._changelog(tp, changelog, next_offset, previous)
        )
        self._persisting[tp] = task
        task.add_done_callback(
            lambda done, tp=tp: (
                self._persisting.pop(tp, None) if self._persisting.get(tp) is done else None
            )
        )

    async def _changelog(
        self,
        tp: TopicPartition,
        changelog: list[Output],
        next_offset: int | None,
        previous: asyncio.Task[None] | None,
    ) -> None:
        retries = 0
        while True:
            try:
                await self.sender.send(changelog)
                break
            except (KafkaError, OSError) as exc:  # the same records again: idempotent
                log.error("changelog_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self.retry_delays[min(retries, len(self.retry_delays) - 1)])
                retries += 1
        if previous is not None:
            await previous
        if next_offset is not None:
            self._to_commit[tp] = next_offset  # step 6, from the loop

    async def written(self, tp: TopicPartition) -> None:
        """Until every changelog write of the partition so far is acknowledged."""
        task = self._persisting.get(tp)
        if task is not None:
            await task

    def _decide(
        self,
        handler: Handler,
        record: ConsumerRecord[Any, Any],
        item: Any,
        batch: Batch,
        context: Any,
    ) -> bool:
        """One record; False when it failed transiently (the partition stops there)."""
        where = _where(record)
        if isinstance(item, DecodeError):
            handler.invalid(record, item.reason, batch)
            self._dead_letter(batch, handler, record, item.reason, None, where)
            return True
        batch.begin()
        try:
            handled = handler.decide(item, record, batch, context)
        except PermanentError as exc:
            batch.rollback()
            self._dead_letter(batch, handler, record, exc.reason, exc, where)
            return True
        except Exception as exc:
            batch.rollback()
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TransientError) or handler.blocking:
                retries = self._retries.get(TopicPartition(record.topic, record.partition), 0)
                log.warning(
                    "record_retried",
                    agent=handler.name,
                    where=where,
                    error=error,
                    retries=retries + 1,
                    blocking=handler.blocking,
                )
                return False
            # No traceback: it could carry a number or a body past the log redaction.
            log.error("record_failed", agent=handler.name, where=where, error=error)
            self._dead_letter(batch, handler, record, error, exc, where)
            return True
        emit = log.debug if handled.debug else log.info
        emit(handled.event, agent=handler.name, where=where, **handled.fields)
        return True

    def _dead_letter(
        self,
        batch: Batch,
        handler: Handler,
        record: ConsumerRecord[Any, Any],
        reason: str,
        error: BaseException | None,
        where: str,
    ) -> None:
        letter = dead_letter_of(self.service, record, reason, error)
        batch.emit(self.dead_letter_topic, record.key, letter)
        self.metrics.dead_lettered(record.topic)
        log.warning("record_dead_lettered", agent=handler.name, where=where, reason=reason)

    async def _commit(self) -> None:
        if not self._to_commit:
            return
        offsets, self._to_commit = self._to_commit, {}
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance: the next owner reads those records again
            log.warning("commit_failed", error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ rebalance

    async def _settle(self, partitions: set[TopicPartition]) -> None:
        """Batches already sending finish (state written, offsets noted); the others are
        abandoned uncommitted, to be read again by the partition's next owner."""
        self._revoking |= partitions
        tasks = []
        for tp in partitions:
            task = self._inflight.get(tp)
            if task is None:
                continue
            if tp not in self._flushing:
                task.cancel()
            tasks.append(task)
        for tp in partitions:
            ahead = self._ahead.pop(tp, None)
            if ahead is not None:  # prepared only: read again by the next owner
                ahead[1].cancel()
                tasks.append(ahead[1])
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        writes = [self._persisting[tp] for tp in partitions if tp in self._persisting]
        if writes:
            _, late = await asyncio.wait(writes, timeout=self.settle_timeout_s)
            for task in late:  # the broker is away: those offsets stay uncommitted
                task.cancel()
        self._revoking -= partitions

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        await self._settle(revoked)
        await self._commit()
        for tp in revoked:
            self._retries.pop(tp, None)
            self._queued.pop(tp, None)  # the next owner reads them from the committed offset
        kept = {tp.partition for tp in self.consumer.assignment()} - {
            tp.partition for tp in revoked
        }
        self.state.drop(p for p in {tp.partition for tp in revoked} if p not in kept)
        for hooks in self.listeners:
            await hooks.revoked(revoked)

    async def assigned_partitions(self, assigned: set[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned}
        restoring = [p for p in partitions if p not in self.state.partitions]
        started = time.perf_counter()
        read = await self.state.restore(restoring, self.client_options)
        for hooks in self.listeners:
            await hooks.assigned(assigned)
        log.info(
            "partitions_assigned",
            service=self.service,
            assigned=len(assigned),
            restored_records=read,
            restore_s=round(time.perf_counter() - started, 3),
        )
        self.assigned.set()


def crash_after(batches: int, handlers: Collection[str]) -> Callable[[Handler, int], None]:
    """Fault injection (``RecordPipeline.outputs_acked``): kill -9 of this process once
    ``batches`` batches of ``handlers`` had their outputs acknowledged, so that their state
    and offsets are never written."""
    seen = 0

    def outputs_acked(handler: Handler, records: int) -> None:
        nonlocal seen
        if handler.name in handlers:
            seen += 1
            if seen >= batches:
                log.warning("crash_injected", handler=handler.name, records=records)
                os.kill(os.getpid(), signal.SIGKILL)

    return outputs_acked


class RebalanceHooks(Protocol):
    async def revoked(self, revoked: set[TopicPartition]) -> None: ...
    async def assigned(self, assigned: set[TopicPartition]) -> None: ...


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: RecordPipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.pipeline.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.pipeline.assigned_partitions(set(assigned))
