"""Stream flow control: resuming a flow that already runs keeps the buffered records (faust
counts them as read and never fetches them again); a suspension and a rebalance's explicit
clear still empty the buffers."""

from __future__ import annotations

import pytest
from mode.utils.queues import FlowControlQueue

from services.common.faust_app import App, StreamFlowControl


def _buffer(flow: StreamFlowControl) -> FlowControlQueue[int]:
    return FlowControlQueue(flow_control=flow, clear_on_resume=True)


@pytest.mark.asyncio
async def test_resuming_a_running_flow_keeps_buffered_records() -> None:
    flow = StreamFlowControl()
    queue = _buffer(flow)
    flow.resume()  # changelog recovery starts the flow
    for offset in range(3):
        await queue.put(offset)  # stream records fetched after the partitions resumed
    flow.resume()  # recovery completed: faust resumes again
    assert flow.is_active()
    assert [queue.get_nowait() for _ in range(3)] == [0, 1, 2]


@pytest.mark.asyncio
async def test_a_resume_after_a_suspension_and_an_explicit_clear_still_empty_buffers() -> None:
    flow = StreamFlowControl()
    queue = _buffer(flow)
    flow.resume()
    await queue.put(1)
    flow.suspend()  # a rebalance
    flow.resume()
    assert queue.empty()
    await queue.put(2)
    flow.clear()  # faust's on_partitions_revoked
    assert queue.empty()


def test_the_shared_app_uses_it() -> None:
    app = App("flow-control-test", autodiscover=False)
    assert isinstance(app.flow_control, StreamFlowControl)
    assert app.flow_control is app.flow_control
    assert not app.flow_control.is_active()  # suspended until the first assignment


def test_faust_web_views_that_show_state_are_off_unless_asked_for() -> None:
    app = App("views-off", autodiscover=False)
    assert not app.conf.web_tables_enabled
    assert not app.conf.web_router_enabled
    assert not app.conf.web_stats_enabled
    assert not app.conf.web_graph_enabled
    assert App("views-on", web_tables_enabled=True).conf.web_tables_enabled
