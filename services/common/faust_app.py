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
"""

from __future__ import annotations

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent


class StreamFlowControl(FlowControlEvent):
    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class App(faust.App):
    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return StreamFlowControl(loop=self.loop)
