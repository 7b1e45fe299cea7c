"""Holds a consent-sensitive action until the consent changes already written for its
partition (STOP, gateway opt-outs) are in the ledger.

Consent commands and actions arrive on two topics; Kafka orders neither against the
other. Before deciding, the action asks the broker for the end of the consent-command
partition with the same number (same contacts) and waits until the consent agent has
applied everything before that end. A STOP processed before the action's decision thus
always blocks it. The wait is bounded; past it the caller treats consent as unreadable.

The end offset comes from a client of the barrier's own: faust's consumer answers such
requests through its fetch thread, which can take a fetch cycle (over a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition


class ConsentBarrier:
    def __init__(
        self,
        topic: str,
        timeout_s: float,
        client_options: Mapping[str, Any],
        committed: Callable[[int], int] = lambda partition: 0,
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._client_options = dict(client_options)
        # The group's committed offset of a partition: what earlier runs applied.
        self._committed = committed
        self._applied: dict[int, int] = {}  # partition -> next offset not yet applied
        self._offsets: AIOKafkaConsumer | None = None

    def applied(self, partition: int, offset: int) -> None:
        """The consent agent is done with ``offset`` of ``partition``."""
        if offset + 1 > self._applied.get(partition, 0):
            self._applied[partition] = offset + 1

    def _position(self, partition: int) -> int:
        return max(self._applied.get(partition, 0), self._committed(partition))

    async def end_offset(self, partition: int) -> int:
        if self._offsets is None:
            client = AIOKafkaConsumer(**self._client_options)
            await client.start()
            self._offsets = client
        tp = TopicPartition(self.topic, partition)
        return int((await self._offsets.end_offsets([tp]))[tp])

    async def wait(self, partition: int) -> bool:
        """True once caught up; False if the timeout passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            end = await asyncio.wait_for(self.end_offset(partition), self.timeout_s)
        except Exception:  # no end offset, no proof the ledger is current: fail closed
            return False
        while self._position(partition) < end:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None
