"""The consent barrier: an action waits for consent changes written before it; the wait is
bounded and an unreadable end offset counts as "not caught up" (fail closed)."""

from __future__ import annotations

import asyncio

import pytest

from services.action_runner.barrier import ConsentBarrier


class _Barrier(ConsentBarrier):
    def __init__(self, end: int | Exception, committed: int = 0, timeout_s: float = 0.3) -> None:
        super().__init__("t.consent", timeout_s, {}, committed=lambda partition: committed)
        self.end = end

    async def end_offset(self, partition: int) -> int:
        if isinstance(self.end, Exception):
            raise self.end
        return self.end


@pytest.mark.asyncio
async def test_nothing_pending_passes_at_once() -> None:
    assert await _Barrier(end=0).wait(0)
    assert await _Barrier(end=5, committed=5).wait(0)  # applied by an earlier run


@pytest.mark.asyncio
async def test_waits_until_the_consent_agent_applied_everything_written() -> None:
    barrier = _Barrier(end=3, timeout_s=5)
    barrier.applied(0, 0)
    waiting = asyncio.create_task(barrier.wait(0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    barrier.applied(1, 7)  # another partition does not count
    barrier.applied(0, 1)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    barrier.applied(0, 2)  # offsets 0..2 applied: the end (3) is reached
    assert await asyncio.wait_for(waiting, 1)


@pytest.mark.asyncio
async def test_gives_up_after_the_timeout() -> None:
    barrier = _Barrier(end=2, timeout_s=0.1)
    barrier.applied(0, 0)
    assert not await barrier.wait(0)


@pytest.mark.asyncio
async def test_an_unreachable_broker_fails_closed() -> None:
    assert not await _Barrier(end=ConnectionError("broker down")).wait(0)
