"""The ``sms-requests`` consumer: an aiokafka consumer group, a task on the sender's loop.

It polls, decodes, hands jobs to the dispatcher and commits, per partition, only up to the
lowest offset whose outcome is not recorded. Above ``max_in_flight`` it pauses its
partitions (back-pressure). On a rebalance it first lets the revoked partitions' requests
finish (bounded) and commits them; a new partition is handled only once the ledger feed
has read that partition's ledger to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.sms import SmsRequest
from schemas.topics import SMS_REQUESTS
from services.common.codec import DecodeError, decode
from services.common.dead_letters import dead_letter_of
from services.common.logging import get_logger
from services.sms_sender.async_kafka import make_consumer
from services.sms_sender.dispatcher import Job
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.settings import SenderSettings
from services.sms_sender.validation import problem

log = get_logger("sms_sender")

SERVICE = "sms-sender"
POLL_MS = 50
# getmany waits without a bound while a rebalance is under way: the loop looks at stop()
# at least this often meanwhile.
POLL_LIMIT_S = 1.0
TOPIC_WAIT_S = 30.0
CLOSE_TIMEOUT_S = 10.0

Record = ConsumerRecord[Any, Any]


class RequestConsumer:
    def __init__(
        self,
        settings: SenderSettings,
        tracker: OffsetTracker,
        submit: Callable[[list[Job]], None],
        sync_ledger: Callable[[set[int]], Awaitable[bool]],
        on_ready: Callable[[], None],
        on_crash: Callable[[BaseException], None] = lambda _: None,
        waiting: Callable[[], int] = lambda: 0,
        blocked: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(SMS_REQUESTS)
        self.tracker = tracker
        self.submit = submit
        self.sync_ledger = sync_ledger
        self.on_ready = on_ready
        self.on_crash = on_crash
        self.waiting = waiting
        # True while the gateway's circuit breaker holds calls back: consumption pauses.
        self.blocked = blocked
        self.max_in_flight = max(settings.sender_max_in_flight, 1)
        # A commit waits at most this long (the broker may be away; the next one catches up).
        self.commit_timeout_s = max(settings.sender_session_timeout_ms / 2000, 1.0)
        self._consumer: AIOKafkaConsumer | None = None
        self._new: set[int] = set()
        self._owned: set[int] = set()
        self._revoked: set[int] = set()
        # Per partition, the next offset to hand out: where a partition that stays assigned
        # across a rebalance resumes (aiokafka would restart it at the committed offset).
        self._positions: dict[int, int] = {}
        self._ready = False
        # Bumped at every assignment: claims name the generation they were made in.
        self.generation = 0
        self._partitions = 0  # of sms-requests, known once the topic's metadata is
        self._stopping = asyncio.Event()
        self._drain_on_stop = True
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> RequestConsumer:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="request-consumer")
        return self

    async def stop(self, drain: bool = True) -> None:
        """Stop polling, let in-flight requests finish (bounded), commit, leave the group.
        Without ``drain`` (after a crash) only what is already finished is committed."""
        self._drain_on_stop = drain
        self._stopping.set()
        task = self._task
        if task is None or task.done():
            return
        limit = self.settings.sender_drain_wait_s + 2 * self.commit_timeout_s + CLOSE_TIMEOUT_S
        try:
            await asyncio.wait_for(asyncio.shield(task), limit)
        except TimeoutError:
            log.warning("request_consumer_stop_timed_out")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # Also the rebalance timeout: how long a join may wait for a member that does not
        # come back. The loop polls every 50 ms, and waits at most LEDGER_SYNC_TIMEOUT_S
        # without; a member that stops polling this long leaves the group.
        poll_limit_ms = max(3 * self.settings.sender_session_timeout_ms, 30000)
        consumer = make_consumer(
            self.settings,
            self.settings.group_id,
            # Small polls keep the flow even: requests go out as slots free up.
            max_poll_records=max(1, min(200, self.max_in_flight // 4)),
            fetch_max_wait_ms=100,
            session_timeout_ms=self.settings.sender_session_timeout_ms,
            heartbeat_interval_ms=max(self.settings.sender_session_timeout_ms // 3, 100),
            max_poll_interval_ms=poll_limit_ms,
            rebalance_timeout_ms=poll_limit_ms,
        )
        self._consumer = consumer
        try:
            await consumer.start()
            await self._wait_for_topic(consumer)
            consumer.subscribe([self.topic], listener=_Rebalance(self))
            next_commit = time.monotonic() + self.settings.sender_commit_interval_s
            while not self._stopping.is_set():
                if self._new:
                    await self._sync_new_partitions()
                batch = await self._poll(consumer)
                # Nothing awaits from the poll to the hand-over: a rebalance happens at an
                # await, so the records handed over belong to the assignment that is known.
                jobs = self._take(consumer, batch)
                if jobs:
                    self.submit(jobs)
                self._apply_back_pressure(consumer)
                if time.monotonic() >= next_commit:
                    await self._commit()
                    next_commit = time.monotonic() + self.settings.sender_commit_interval_s
            # As on revocation: ownership ends first, so queued requests are released (left
            # uncommitted for the next owner) and only calls under way finish.
            owned, self._owned = self._owned, set()
            if self._drain_on_stop:
                await self._drain(None)
            await self._commit(owned)
        except Exception as exc:
            self.error = exc
            log.error("request_consumer_crashed", error=repr(exc))
            self.on_crash(exc)
        finally:
            try:
                await asyncio.wait_for(consumer.stop(), CLOSE_TIMEOUT_S)
            except (TimeoutError, KafkaError) as exc:
                log.warning("request_consumer_close_failed", error=repr(exc))

    async def _wait_for_topic(self, consumer: AIOKafkaConsumer) -> None:
        """Join the group only once the topic exists: the group would otherwise settle on
        an empty assignment first, then rebalance again when the topic appears."""
        deadline = time.monotonic() + TOPIC_WAIT_S
        while True:
            with contextlib.suppress(KafkaError):  # the broker not answering yet
                if self.topic in await consumer.topics():
                    return
            if time.monotonic() > deadline or self._stopping.is_set():
                raise RuntimeError(f"topic {self.topic} not found: run `smsflow topics create`")
            await asyncio.sleep(0.1)

    async def _poll(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Record]]:
        # A cancelled getmany loses nothing: records are taken (and the position moved)
        # only in the step that returns them.
        try:
            return await asyncio.wait_for(consumer.getmany(timeout_ms=POLL_MS), POLL_LIMIT_S)
        except TimeoutError:
            return {}

    def _take(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Record]]
    ) -> list[Job]:
        """The jobs of ``batch``'s handled partitions. Records of a partition fetched again
        are dropped: they come again. Records of a partition assigned but not handled yet
        (its ledger not read to its end, or its assignment not yet seen by the listener)
        are put back, to be fetched again."""
        rewound = self._fetch_released_again(consumer)
        jobs: list[Job] = []
        assigned = consumer.assignment()
        for tp, records in batch.items():
            partition = tp.partition
            if not records or partition in rewound:
                continue
            if partition in self._owned and partition not in self._new:
                jobs.extend(self._job(r) for r in records)
                self._positions[partition] = records[-1].offset + 1
            elif tp in assigned:
                consumer.seek(tp, records[0].offset)
        return jobs

    def _job(self, record: Record) -> Job:
        partition, offset = record.partition, record.offset
        self.tracker.add(partition, offset)
        try:
            request = decode(SmsRequest, record.value)
        except DecodeError as exc:
            return self._dead_letter(record, exc.reason, exc)
        reason = problem(request, self.settings.sender_max_segments)
        if reason is not None:
            return self._dead_letter(record, reason, ValueError(reason))
        return Job(partition, offset, request=request)

    def _dead_letter(self, record: Record, reason: str, error: BaseException) -> Job:
        letter = dead_letter_of(SERVICE, record, reason, error)
        return Job(record.partition, record.offset, dead_letter=letter)

    def share(self) -> float:
        """This instance's share of the partitions, so of every sender number's traffic
        (requests are keyed by contact): its share of each number's rate limit."""
        if not self._partitions:
            return 1.0
        return max(len(self._owned), 1) / self._partitions

    def owns(self, partition: int) -> bool:
        """Whether ``partition`` is still assigned here (read from the loop before each
        gateway call: a revoked partition's requests are left to the new owner)."""
        return partition in self._owned

    def _fetch_released_again(self, consumer: AIOKafkaConsumer) -> set[int]:
        """Owned partitions with requests released while they were not owned: fetched again
        from their lowest unfinished offset, since the fetch position is past them.

        Checked at every turn, not only at assignment: a request may be released (its
        ownership check ran during the revocation) only after the partition came back.
        Requests still in flight finish into a fresh state and are fetched again too; a
        repeat waits for the one under way, then finds it settled in the ledger.
        """
        points = self.tracker.restart_points(self._owned)
        for partition, offset in points.items():
            self.tracker.forget({partition})
            consumer.seek(TopicPartition(self.topic, partition), offset)
            self._positions[partition] = offset
            log.info("released_requests_fetched_again", partition=partition, offset=offset)
        return set(points)

    async def _sync_new_partitions(self) -> None:
        """Reads the new partitions' ledger to its end; until then their records are put
        back (the other partitions flow meanwhile)."""
        wanted, generation = set(self._new), self.generation
        if not await self.sync_ledger(wanted):
            log.warning("ledger_sync_delayed", partitions=sorted(wanted))
            return
        if generation != self.generation:
            return  # reassigned meanwhile: a partition may have had another owner since
        self._new -= wanted
        if not self._new and not self._ready:
            self._ready = True
            self.on_ready()

    def _apply_back_pressure(self, consumer: AIOKafkaConsumer) -> None:
        # aiokafka clears a partition's paused flag at every assignment, so the flags are
        # read from the consumer, not remembered here. Requests that only wait for a
        # delivery callback (ambiguous, Twilio) do not count: after a crash many may wait
        # for minutes, and sending must go on meanwhile.
        pending = self.tracker.pending() - self.waiting()
        if pending >= self.max_in_flight or self.blocked():
            running = consumer.assignment() - consumer.paused()
            if running:
                consumer.pause(*running)
        elif pending <= self.max_in_flight * 3 // 4 and not self.blocked():
            paused = consumer.paused()
            if paused:
                consumer.resume(*paused)

    async def _drain(self, partitions: set[int] | None, limit_s: float | None = None) -> None:
        deadline = time.monotonic() + (limit_s or self.settings.sender_drain_wait_s)
        while self.tracker.pending(partitions) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _commit(self, only: set[int] | None = None) -> None:
        wanted = self._owned if only is None else only
        offsets = {p: o for p, o in self.tracker.committable().items() if p in wanted}
        if not offsets or self._consumer is None:
            return
        request = {TopicPartition(self.topic, p): o for p, o in offsets.items()}
        try:
            await asyncio.wait_for(self._consumer.commit(request), self.commit_timeout_s)
            self.tracker.mark_committed(offsets)
        except (KafkaError, TimeoutError) as exc:  # a rebalance, the broker away: next time
            log.warning("offsets_commit_failed", error=repr(exc))

    # Awaited by aiokafka's group coordinator before it rejoins (revoked) and once the new
    # assignment is set (assigned). Whatever is not committed on revocation is handled again
    # by the next owner, and the ledger makes that safe.

    async def revoked(self, partitions: set[int]) -> None:
        # Ownership ends first, before anything awaits: from now on no request of these
        # partitions calls the gateway (the dispatcher checks right before each call). Calls
        # already under way finish within the drain; the rest are released, uncommitted, to
        # the next owner.
        self._owned -= partitions
        await self._drain(partitions, self.settings.sender_session_timeout_ms / 2000)
        await self._commit(partitions)
        self._revoked |= partitions
        log.info("partitions_revoked", partitions=sorted(partitions))

    def assigned(self, consumer: AIOKafkaConsumer, partitions: set[int]) -> None:
        # A partition assigned again keeps its pending offsets, and resumes fetching where
        # it left off; only partitions really gone are forgotten.
        gone = self._revoked - partitions
        self.tracker.forget(gone)
        for partition in gone:
            self._positions.pop(partition, None)
        for partition in partitions & self._revoked:
            if partition in self._positions:
                tp = TopicPartition(self.topic, partition)
                consumer.seek(tp, self._positions[partition])
        # Requests released on revocation lie before that position: the loop fetches those
        # again (_fetch_released_again).
        self.generation += 1
        self._new = (self._new & partitions) | (partitions - self._revoked - self._owned)
        self._owned, self._revoked = set(partitions), set()
        self._partitions = len(consumer.partitions_for_topic(self.topic) or ()) or self._partitions
        if not partitions and not self._ready:
            self._ready = True
            self.on_ready()
        log.info("partitions_assigned", partitions=sorted(partitions))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: RequestConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.owner._consumer
        assert consumer is not None
        self.owner.assigned(consumer, {tp.partition for tp in assigned})
