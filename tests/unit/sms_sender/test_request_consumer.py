"""The request consumer's bookkeeping around aiokafka, on a broker-free stand-in of the group
consumer: which records become jobs, where partitions are fetched from after a rebalance,
and what is committed when partitions are revoked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from schemas.topics import SMS_REQUESTS
from services.common.codec import encode
from services.sms_sender.consumer import RequestConsumer
from services.sms_sender.dispatcher import Job
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.settings import SenderSettings
from tests.unit.pipeline_fakes import record
from tests.unit.sms_sender.factories import request

pytestmark = pytest.mark.asyncio


class FakeGroupConsumer:
    """What the request consumer asks of aiokafka: assignment, seeks, pauses, commits."""

    def __init__(self, topic: str, partitions: int = 4) -> None:
        self.topic = topic
        self.partitions = partitions
        self.assigned: set[int] = set()
        self.seeks: list[tuple[int, int]] = []
        self.commits: list[dict[int, int]] = []
        self._paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self.topic, p) for p in self.assigned}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp in self.assignment()  # aiokafka refuses a partition not assigned
        self.seeks.append((tp.partition, offset))

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: o for tp, o in offsets.items()})

    def rebalance(self, owner: RequestConsumer, partitions: set[int]) -> None:
        """The new assignment is set, then the listener is told (as aiokafka does)."""
        self.assigned = set(partitions)
        owner.assigned(self, partitions)  # type: ignore[arg-type]


class Harness:
    def __init__(self, max_in_flight: int = 100) -> None:
        self.settings = SenderSettings(
            sender_max_in_flight=max_in_flight, sender_session_timeout_ms=200
        )
        self.tracker = OffsetTracker()
        self.jobs: list[Job] = []
        self.synced: list[set[int]] = []
        self.ready = 0
        self.consumer = RequestConsumer(
            self.settings,
            self.tracker,
            self.jobs.extend,
            sync_ledger=self._sync,
            on_ready=self._ready,
        )
        self.group = FakeGroupConsumer(self.consumer.topic)
        self.consumer._consumer = self.group  # type: ignore[assignment]

    async def _sync(self, partitions: set[int]) -> bool:
        self.synced.append(set(partitions))
        return True

    def _ready(self) -> None:
        self.ready += 1

    def batch(self, partition: int, *offsets: int) -> dict[TopicPartition, list[Any]]:
        topic = self.consumer.topic
        records = [record(topic, o, encode(request(o)), partition=partition) for o in offsets]
        return {TopicPartition(topic, partition): records}

    def take(self, batch: dict[TopicPartition, list[Any]]) -> list[tuple[int, int]]:
        jobs = self.consumer._take(self.group, batch)  # type: ignore[arg-type]
        self.jobs.extend(jobs)
        return [(j.partition, j.offset) for j in jobs]

    async def assign(self, *partitions: int) -> None:
        """A rebalance: revocation of what is owned, then the new assignment, synced."""
        await self.consumer.revoked(set(self.group.assigned))
        self.group.rebalance(self.consumer, set(partitions))
        if self.consumer._new:
            await self.consumer._sync_new_partitions()


async def test_new_partitions_are_handled_only_once_their_ledger_is_read() -> None:
    h = Harness()
    await h.consumer.revoked(set())  # the first join revokes nothing
    h.group.rebalance(h.consumer, {0, 1})
    assert h.consumer.topic == h.settings.topic(SMS_REQUESTS)
    # Fetched before the ledger is read: put back, to be fetched again.
    assert h.take(h.batch(0, 5, 6)) == []
    assert h.group.seeks == [(0, 5)]
    assert h.tracker.pending() == 0
    await h.consumer._sync_new_partitions()
    assert h.synced == [{0, 1}]
    assert h.ready == 1
    assert h.take(h.batch(0, 5, 6)) == [(0, 5), (0, 6)]
    assert h.consumer.share() == 2 / 4


async def test_records_fetched_before_the_listener_saw_the_assignment_are_put_back() -> None:
    h = Harness()
    h.group.assigned = {2}  # aiokafka set the assignment; the listener has not run yet
    assert h.take(h.batch(2, 40)) == []
    assert h.group.seeks == [(2, 40)]


async def test_a_partition_kept_across_a_rebalance_resumes_where_it_left_off() -> None:
    h = Harness()
    await h.assign(0, 1)
    h.take(h.batch(0, 10, 11, 12))
    h.take(h.batch(1, 3))
    h.tracker.finish(0, 10)
    h.tracker.finish(0, 11)
    h.tracker.finish(0, 12)
    h.tracker.finish(1, 3)
    generation = h.consumer.generation
    await h.assign(0, 2)
    # aiokafka would start partition 0 at its committed offset; it goes on at 13 instead.
    assert (0, 13) in h.group.seeks
    assert not any(p == 2 for p, _ in h.group.seeks)  # new: from the committed offset
    assert h.consumer.generation == generation + 1
    assert h.synced[-1] == {2}  # only the new partition waits for its ledger
    assert h.group.commits[-1] == {0: 13, 1: 4}  # committed on revocation
    assert [h.consumer.owns(p) for p in range(3)] == [True, False, True]


async def test_pending_offsets_of_a_kept_partition_still_hold_the_commit_back() -> None:
    h = Harness()
    await h.assign(0)
    h.take(h.batch(0, 10, 11))
    h.tracker.finish(0, 11)
    revoking = asyncio.create_task(h.consumer.revoked({0}))
    await asyncio.sleep(0)
    assert not h.consumer.owns(0)  # ownership ended before anything awaited
    h.tracker.finish(0, 10)  # the call under way finishes within the drain
    await revoking
    assert h.group.commits == [{0: 12}]
    h.group.rebalance(h.consumer, {0})
    assert h.group.seeks[-1] == (0, 12)


async def test_a_revocation_drain_is_bounded_and_commits_only_what_finished() -> None:
    h = Harness()
    await h.assign(0)
    h.take(h.batch(0, 10, 11, 12))
    h.tracker.finish(0, 10)
    await asyncio.wait_for(h.consumer.revoked({0}), 2.0)  # session timeout / 2 = 0.1 s
    assert h.group.commits == [{0: 11}]
    h.group.rebalance(h.consumer, {1})
    assert h.tracker.pending() == 0  # partition 0 is gone: its requests are forgotten


async def test_requests_released_while_not_owned_are_fetched_again() -> None:
    h = Harness()
    await h.assign(0)
    h.take(h.batch(0, 20, 21, 22))
    h.tracker.finish(0, 20)
    h.tracker.abandon(0, 22)  # released: its ownership check ran during a revocation
    # From the lowest unfinished offset (21, still open), and this turn's records dropped.
    assert h.take(h.batch(0, 23, 24)) == []
    assert h.group.seeks[-1] == (0, 21)
    assert h.take(h.batch(0, 21, 22, 23)) == [(0, 21), (0, 22), (0, 23)]
    assert h.tracker.pending({0}) == 3  # a fresh state: the earlier handing out is forgotten


@pytest.mark.parametrize("blocked", [False, True])
async def test_partitions_pause_at_the_in_flight_limit_and_resume_at_three_quarters(
    blocked: bool,
) -> None:
    h = Harness(max_in_flight=4)
    h.consumer.blocked = lambda: blocked
    await h.assign(0, 1)
    h.take(h.batch(0, 1, 2, 3))
    h.consumer._apply_back_pressure(h.group)  # type: ignore[arg-type]
    assert bool(h.group.paused()) is blocked
    h.take(h.batch(1, 1))
    h.consumer._apply_back_pressure(h.group)  # type: ignore[arg-type]
    assert h.group.paused() == h.group.assignment()
    h.tracker.finish(0, 1)
    h.consumer._apply_back_pressure(h.group)  # type: ignore[arg-type]
    assert bool(h.group.paused()) is blocked  # 3 of 4: resumed unless the breaker is open
