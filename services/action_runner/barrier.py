"""Holds a consent-sensitive action until the consent changes already written for its
partition (STOP, gateway opt-outs) are in the ledger.

Consent commands and actions arrive on two topics; Kafka orders neither against the
other. Before deciding, the action asks the broker for the end of the consent-command
partition with the same number (same contacts) and waits until the consent agent has
applied everything before that end. A STOP processed before the action's decision thus
always blocks it. The wait is bounded; past it the caller treats consent as unreadable.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP


class ConsentBarrier:
    def __init__(self, app: Any, topic: str, timeout_s: float) -> None:
        self.app = app
        self.topic = topic
        self.timeout_s = timeout_s
        self._applied: dict[int, int] = {}  # partition -> next offset not yet applied

    def applied(self, partition: int, offset: int) -> None:
        """The consent agent is done with ``offset`` of ``partition``."""
        if offset + 1 > self._applied.get(partition, 0):
            self._applied[partition] = offset + 1

    def _position(self, tp: TP) -> int:
        # Before this process applies anything, everything below the group's committed
        # offset was applied by an earlier run (faust keeps it per partition).
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp) or 0
        return max(self._applied.get(tp.partition, 0), int(committed))

    async def wait(self, partition: int) -> bool:
        """True once caught up; False if the timeout passed first."""
        tp = TP(self.topic, partition)
        end = (await self.app.consumer.highwaters(tp))[tp]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while self._position(tp) < end:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True
