"""``TimerQueue.wait``: the timer task sleeps until the earliest due time, not a fixed scan."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.enroller.timers import TimerQueue


async def _waiting(timers: TimerQueue, longest: float) -> asyncio.Task[None]:
    task = asyncio.create_task(timers.wait(longest))
    await asyncio.sleep(0.05)  # it is asleep now
    return task


@pytest.mark.asyncio
async def test_wait_returns_at_the_earliest_due_time() -> None:
    timers = TimerQueue()
    started = time.time()
    timers.schedule("acme:1", started + 0.3)
    timers.schedule("acme:2", started + 30)
    await asyncio.wait_for(timers.wait(60), 5)
    assert 0.25 <= time.time() - started < 2
    assert timers.pop_due(time.time()) == ["acme:1"]


@pytest.mark.asyncio
async def test_a_nearer_timer_wakes_the_wait_and_a_later_one_does_not() -> None:
    timers = TimerQueue()
    timers.schedule("acme:1", time.time() + 30)
    task = await _waiting(timers, 60)
    timers.schedule("acme:2", time.time() + 40)  # later than what it sleeps for
    await asyncio.sleep(0.1)
    assert not task.done()

    woken = time.time()
    timers.schedule("acme:3", woken)  # due now
    await asyncio.wait_for(task, 2)
    assert time.time() - woken < 1
    assert timers.pop_due(time.time()) == ["acme:3"]


@pytest.mark.asyncio
async def test_without_timers_wait_returns_after_the_longest_sleep() -> None:
    timers = TimerQueue()
    started = time.time()
    await asyncio.wait_for(timers.wait(0.2), 5)
    assert 0.15 <= time.time() - started < 2
    assert timers.next_due() is None
