"""The ``sms-requests`` consumer thread (kafka-python, a consumer group).

It polls, decodes, hands jobs to the asyncio loop and commits, per partition, only up to
the lowest offset whose outcome is not recorded. Above ``max_in_flight`` it pauses its
partitions (back-pressure). On a rebalance it first lets the revoked partitions' requests
finish (bounded) and commits them; a new partition is handled only once the ledger feed
has read that partition's ledger to its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from schemas.sms import SmsRequest
from schemas.topics import SMS_REQUESTS
from services.common.codec import DecodeError, decode
from services.common.dead_letters import dead_letter
from services.common.kafka import make_consumer
from services.common.logging import get_logger
from services.sms_sender.dispatcher import Job
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.settings import SenderSettings
from services.sms_sender.validation import problem

log = get_logger("sms_sender")

SERVICE = "sms-sender"


class RequestConsumer:
    def __init__(
        self,
        settings: SenderSettings,
        tracker: OffsetTracker,
        submit: Callable[[list[Job]], None],
        sync_ledger: Callable[[set[int]], bool],
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
        self._consumer: KafkaConsumer | None = None
        self._new: set[int] = set()
        self._owned: set[int] = set()
        self._revoked: set[int] = set()
        self._ready = False
        # Bumped at every assignment: claims name the generation they were made in.
        self.generation = 0
        self._partitions = 0  # of sms-requests, known once the topic's metadata is
        self._stop = threading.Event()
        self._drain_on_stop = True
        self._thread = threading.Thread(target=self._run, name="request-consumer", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> RequestConsumer:
        self._thread.start()
        return self

    def stop(self, drain: bool = True) -> None:
        """Stop polling, let in-flight requests finish (bounded), commit, leave the group.
        Without ``drain`` (after a crash) only what is already finished is committed."""
        self._drain_on_stop = drain
        self._stop.set()
        self._thread.join(timeout=self.settings.sender_drain_wait_s + 15)

    def _run(self) -> None:
        consumer = make_consumer(
            self.settings,
            group_id=self.settings.group_id,
            # Small polls keep the flow even: requests go out as slots free up.
            max_poll_records=max(1, min(200, self.max_in_flight // 4)),
            fetch_max_wait_ms=100,
            session_timeout_ms=self.settings.sender_session_timeout_ms,
            heartbeat_interval_ms=max(self.settings.sender_session_timeout_ms // 3, 100),
            # Also the rebalance timeout: how long a join may wait for a member that does not
            # come back (kafka-python's default, 5 minutes, would stall the group that long).
            # The loop polls every 50 ms, and waits at most LEDGER_SYNC_TIMEOUT_S without.
            max_poll_interval_ms=max(3 * self.settings.sender_session_timeout_ms, 30000),
        )
        self._consumer = consumer
        try:
            # Subscribe first, then wait for the topic's metadata: see _wait_for_topic.
            consumer.subscribe([self.topic], listener=_Rebalance(self))
            self._wait_for_topic(consumer)
            next_commit = time.monotonic() + self.settings.sender_commit_interval_s
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=50)
                _finish_pending_join(consumer)
                # Records of a partition fetched again are dropped here: they come again.
                rewound = self._fetch_released_again(consumer)
                if self._new:
                    self._sync_new_partitions()
                # Records of a partition no longer owned are left to its new owner, which
                # starts from the committed offset.
                jobs = [
                    self._job(r)
                    for tp, records in batch.items()
                    if tp.partition in self._owned and tp.partition not in rewound
                    for r in records
                ]
                if jobs:
                    self.submit(jobs)
                self._apply_back_pressure(consumer)
                if time.monotonic() >= next_commit:
                    self._commit()
                    next_commit = time.monotonic() + self.settings.sender_commit_interval_s
            # As on revocation: ownership ends first, so queued requests are released (left
            # uncommitted for the next owner) and only calls under way finish.
            owned, self._owned = self._owned, set()
            if self._drain_on_stop:
                self._drain(None)
            self._commit(owned)
        except BaseException as exc:
            self.error = exc
            log.error("request_consumer_crashed", error=repr(exc))
            self.on_crash(exc)
        finally:
            consumer.close(autocommit=False)

    def _wait_for_topic(self, consumer: KafkaConsumer) -> None:
        """Join the group only once the topic's metadata is known, and known since the
        subscription: the group leader compares the partitions it assigned from with the
        metadata it sees afterwards, and rebalances again when they differ.

        kafka-python (3.0.12) builds that snapshot from metadata received after
        ``subscribe``. Metadata fetched before it (the topic check used to come first) left
        the snapshot empty at the first join, so the first metadata update triggered a
        second, self-requested rebalance ~0.3 s later. Such a rebalance is fragile there:
        the leader's own assignment clears the reason to rejoin, so when ``poll``'s short
        timeout expires before the SyncGroup answer is read, later polls no longer finish
        the join, and the member stays rebalancing (nothing fetched, no heartbeats) until
        something else asks for a rejoin.
        """
        deadline = time.monotonic() + 30
        while not (partitions := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline or self._stop.is_set():
                raise RuntimeError(f"topic {self.topic} not found: run `smsflow topics create`")
            time.sleep(0.1)
        self._partitions = len(partitions)

    def _job(self, record: object) -> Job:
        partition, offset = record.partition, record.offset  # type: ignore[attr-defined]
        self.tracker.add(partition, offset)
        try:
            request = decode(SmsRequest, record.value)  # type: ignore[attr-defined]
        except DecodeError as exc:
            return self._dead_letter(record, exc.reason, exc)
        reason = problem(request, self.settings.sender_max_segments)
        if reason is not None:
            return self._dead_letter(record, reason, ValueError(reason))
        return Job(partition, offset, request=request)

    def _dead_letter(self, record: object, reason: str, error: BaseException) -> Job:
        partition, offset = record.partition, record.offset  # type: ignore[attr-defined]
        letter = dead_letter(
            service=SERVICE,
            topic=self.topic,
            partition=partition,
            offset=offset,
            key=record.key,  # type: ignore[attr-defined]
            value=record.value,  # type: ignore[attr-defined]
            reason=reason,
            error=error,
            headers=record.headers,  # type: ignore[attr-defined]
        )
        return Job(partition, offset, dead_letter=letter)

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

    def _fetch_released_again(self, consumer: KafkaConsumer) -> set[int]:
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
            log.info("released_requests_fetched_again", partition=partition, offset=offset)
        return set(points)

    def _sync_new_partitions(self) -> None:
        wanted, self._new = self._new, set()
        while not self.sync_ledger(wanted):
            log.warning("ledger_sync_delayed", partitions=sorted(wanted))
            if self._stop.is_set():
                return
        if not self._ready:
            self._ready = True
            self.on_ready()

    def _apply_back_pressure(self, consumer: KafkaConsumer) -> None:
        # kafka-python keeps a partition's paused flag across a rebalance when the partition
        # stays assigned, so the flags are read from the consumer, not remembered here.
        # Requests that only wait for a delivery callback (ambiguous, Twilio) do not count:
        # after a crash many may wait for minutes, and sending must go on meanwhile.
        pending = self.tracker.pending() - self.waiting()
        if pending >= self.max_in_flight or self.blocked():
            running = consumer.assignment() - consumer.paused()
            if running:
                consumer.pause(*running)
        elif pending <= self.max_in_flight * 3 // 4 and not self.blocked():
            paused = consumer.paused()
            if paused:
                consumer.resume(*paused)

    def _drain(self, partitions: set[int] | None, limit_s: float | None = None) -> None:
        deadline = time.monotonic() + (limit_s or self.settings.sender_drain_wait_s)
        while self.tracker.pending(partitions) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _commit(self, only: set[int] | None = None, wait: bool = True) -> None:
        wanted = self._owned if only is None else only
        offsets = {p: o for p, o in self.tracker.committable().items() if p in wanted}
        if not offsets or self._consumer is None:
            return
        request = {
            TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()
        }
        try:
            if wait:
                self._consumer.commit(request)
            else:
                self._consumer.commit_async(request)
            self.tracker.mark_committed(offsets)
        except KafkaError as exc:  # e.g. a rebalance in progress: the next commit catches up
            log.warning("offsets_commit_failed", error=repr(exc))

    # Called by the listener on kafka-python's IO thread (inside poll or close), where
    # blocking consumer calls are not allowed: the commit is sent without waiting, and the
    # wait for in-flight requests stays well inside the session timeout. Whatever is not
    # committed here is handled again by the next owner, and the ledger makes that safe.

    def revoked(self, partitions: set[int]) -> None:
        # Ownership ends first: from now on no request of these partitions calls the
        # gateway (the dispatcher checks right before each call). Calls already under way
        # finish within the drain; the rest are released, uncommitted, to the next owner.
        self._owned -= partitions
        self._drain(partitions, self.settings.sender_session_timeout_ms / 2000)
        self._commit(partitions, wait=False)
        self._revoked |= partitions
        log.info("partitions_revoked", partitions=sorted(partitions))

    def assigned(self, partitions: set[int]) -> None:
        # A partition assigned again keeps its fetch position in kafka-python, so it keeps
        # its pending offsets here too; only partitions really gone are forgotten.
        self.tracker.forget(self._revoked - partitions)
        # A partition that comes back keeps its fetch position, past requests released on
        # revocation: the loop fetches those again (_fetch_released_again).
        self.generation += 1
        self._new |= partitions - self._revoked - self._owned
        self._owned, self._revoked = set(partitions), set()
        if not partitions and not self._ready:
            self._ready = True
            self.on_ready()
        log.info("partitions_assigned", partitions=sorted(partitions))


def _finish_pending_join(consumer: KafkaConsumer) -> None:
    """Let the next ``poll`` finish a join that kafka-python would leave unfinished.

    In kafka-python 3.0.12 a rebalance that the group leader asks for itself (its metadata
    changed, e.g. partitions were added) stops counting as needed once the leader has made
    its assignment, before the SyncGroup answer is read. When ``poll``'s timeout expires in
    between (the revoke listener, a loaded machine), later polls never finish the join: the
    member stays rebalancing, fetches nothing and sends no heartbeats until something else
    asks for a rejoin (the broker drops it after the session timeout meanwhile). Asking
    for a rejoin while a join is under way makes the next poll wait for the join still in
    flight (or, if its answer came meanwhile, join once more: a short extra rebalance).
    Outside ``poll`` nothing completes a join, so a settled member is never asked to rejoin.
    Private API: without it, this does nothing.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    try:
        stalled = coordinator.rebalance_in_progress() and not coordinator.need_rejoin()
    except AttributeError:
        return
    if stalled:
        log.warning("group_join_resumed")
        coordinator.request_rejoin()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: RequestConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.owner.revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owner.assigned({tp.partition for tp in assigned})
