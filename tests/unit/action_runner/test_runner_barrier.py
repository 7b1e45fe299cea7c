"""The consent barrier: a batch waits (once, woken by progress, not by polling) until the
consent partitions it depends on are applied up to their end as of the batch; the wait is
bounded, and an unknown end offset counts as "not caught up" (fail closed)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import TopicPartition

from services.action_runner.barrier import ConsentBarrier

CONSENT = TopicPartition("t.consent", 0)
REPLIES = TopicPartition("t.replies", 1)


def _barrier(ends: dict[TopicPartition, int] | Exception, timeout_s: float = 5) -> ConsentBarrier:
    asked: list[list[TopicPartition]] = []

    async def end_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        asked.append(sorted(tps))
        if isinstance(ends, Exception):
            raise ends
        return {tp: ends[tp] for tp in tps}

    barrier = ConsentBarrier(end_offsets, timeout_s)
    barrier.asked = asked  # type: ignore[attr-defined]
    return barrier


@pytest.mark.asyncio
async def test_nothing_pending_passes_at_once_with_one_request_per_batch() -> None:
    barrier = _barrier({CONSENT: 5, REPLIES: 0})
    barrier.start(CONSENT, 5)  # applied by an earlier run (the committed offset)
    barrier.start(REPLIES, 0)
    assert await barrier.caught_up([CONSENT, REPLIES, CONSENT]) == {CONSENT, REPLIES}
    assert barrier.asked == [sorted([CONSENT, REPLIES])]  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_waits_until_everything_written_is_applied_and_wakes_on_progress() -> None:
    barrier = _barrier({CONSENT: 3})
    barrier.start(CONSENT, 0)
    waiting = asyncio.create_task(barrier.caught_up([CONSENT]))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    barrier.applied(TopicPartition("t.consent", 1), 7)  # another partition does not count
    barrier.applied(CONSENT, 2)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    barrier.applied(CONSENT, 3)  # offsets 0..2 applied: the end (3) is reached
    assert await asyncio.wait_for(waiting, 0.1) == {CONSENT}


@pytest.mark.asyncio
async def test_a_partition_not_reached_in_time_is_left_out() -> None:
    barrier = _barrier({CONSENT: 2, REPLIES: 1}, timeout_s=0.1)
    barrier.start(CONSENT, 0)
    barrier.start(REPLIES, 1)
    assert await barrier.caught_up([CONSENT, REPLIES]) == {REPLIES}


@pytest.mark.asyncio
async def test_an_unknown_end_offset_proves_nothing() -> None:
    barrier = _barrier(RuntimeError("broker down"))
    barrier.start(CONSENT, 0)
    assert await barrier.caught_up([CONSENT]) == set()


@pytest.mark.asyncio
async def test_partitions_this_instance_does_not_read_are_not_waited_for() -> None:
    barrier = _barrier({CONSENT: 9})
    assert not barrier.reads(CONSENT)
    assert await barrier.caught_up([CONSENT]) == set()
    assert barrier.asked == []  # type: ignore[attr-defined]
    barrier.start(CONSENT, 9)
    barrier.forget([CONSENT])  # revoked
    assert not barrier.reads(CONSENT)
