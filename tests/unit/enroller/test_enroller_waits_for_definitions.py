"""Nothing is decided before the definitions are read to the end: the agent takes no record
and the timer task does no upkeep until the view's ``loaded`` is set."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest
import structlog

from services.common.codec import encode
from tests.unit.enroller.builders import change
from tests.unit.enroller.test_enroller_agent import Harness


@pytest.mark.asyncio
async def test_the_agent_handles_records_only_once_the_definitions_are_loaded() -> None:
    structlog.reset_defaults()
    h = Harness()
    loaded = h.enroller.definitions.loaded = asyncio.Event()  # a view still reading
    async with h.enroller.agent.test_context() as agent:
        h.agent = agent
        customer = change(lifecyclestage="customer")
        putting = asyncio.create_task(agent.put(encode(customer), key=customer.key.encode()))
        await asyncio.sleep(0.2)
        assert h.enroller.handler.finished == 0
        assert h.commands() == []
        loaded.set()
        await asyncio.wait_for(putting, 5)
        await h.until(lambda: h.enroller.handler.finished == 1)
        assert [c.action.type for c in h.commands()] == ["manage_subscription"]
    consumer = h.enroller.app.__dict__.get("_consumer")
    if consumer is not None:
        consumer._thread.thread_loop.close()
    structlog.reset_defaults()


@pytest.mark.asyncio
async def test_the_timer_task_starts_its_upkeep_only_once_the_definitions_are_loaded() -> None:
    h = Harness()
    loaded = h.enroller.definitions.loaded = asyncio.Event()
    h.enroller.upkeep.run = AsyncMock()  # type: ignore[method-assign]
    timers = asyncio.create_task(h.enroller._timer_fun()())
    await asyncio.sleep(0.05)
    h.enroller.upkeep.run.assert_not_awaited()
    loaded.set()
    await asyncio.wait_for(timers, 1)
    h.enroller.upkeep.run.assert_awaited_once()
