"""A faust App that keeps stream buffers when a running flow is resumed.

faust's ``FlowControlEvent.resume`` empties every stream buffer, even when the flow was never
suspended. After a restart faust resumes the flow to read the changelogs, then resumes the
stream partitions, seeks them to the committed offsets and resumes the flow a second time.
Records fetched in between are already counted as read (faust never fetches them again), so
that second resume silently dropped them: a service went idle with records unhandled until
the next rebalance. A rebalance still empties the buffers: faust clears them explicitly when
partitions are revoked, and a resume after a suspension clears them as before. A record kept
this way may also be fetched again after the seek; every handler is idempotent, so it is
handled as a replay.

faust's own web views are off: ``/table/...`` serves table contents (phone numbers, the
consent ledger) and ``/router/...``, ``/graph`` and the statistics pages the cluster's
layout, to anyone who reaches the port. The services serve their own pages instead.
"""

from __future__ import annotations

from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent


class StreamFlowControl(FlowControlEvent):
    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


# Every faust web view that shows internal state; an app may still turn one on explicitly.
PRIVATE_WEB_VIEWS = (
    "web_tables_enabled",
    "web_router_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
)


class App(faust.App):
    def __init__(self, id: str, **options: Any) -> None:
        for setting in PRIVATE_WEB_VIEWS:
            options.setdefault(setting, False)
        super().__init__(id, **options)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return StreamFlowControl(loop=self.loop)
