"""Holds a batch of consent-sensitive actions until the consent records already written for
the partitions it depends on (STOPs in ``sms-inbound``, wide consent commands) are applied.

Actions and consent records arrive on different topics; Kafka orders neither against the
other. Before a batch is decided, one ListOffsets request gives the end of every partition
it depends on (per batch, never per action); the batch then waits until this instance has
applied everything before those ends. Each applied batch sets an event that wakes the
waiters (no polling). The wait is bounded; a partition not caught up by then is reported,
and the caller fails closed for the actions that depend on it.

Only partitions this instance reads are waited for: the others' consent changes count once
they are on ``opt-outs`` (the view the send gate reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

from aiokafka.structs import TopicPartition

EndOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]


class ConsentBarrier:
    def __init__(self, end_offsets: EndOffsets, timeout_s: float) -> None:
        self._end_offsets = end_offsets
        self.timeout_s = timeout_s
        self._applied: dict[TopicPartition, int] = {}  # next offset not yet applied
        self._advanced = asyncio.Event()

    def reads(self, tp: TopicPartition) -> bool:
        return tp in self._applied

    def start(self, tp: TopicPartition, committed: int) -> None:
        """This instance now reads ``tp``; earlier runs applied everything before
        ``committed``."""
        self._applied[tp] = committed
        self._wake()

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._applied.pop(tp, None)
        self._wake()

    def applied(self, tp: TopicPartition, next_offset: int) -> None:
        if tp in self._applied and next_offset > self._applied[tp]:
            self._applied[tp] = next_offset
            self._wake()

    def _wake(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def caught_up(self, tps: Iterable[TopicPartition]) -> set[TopicPartition]:
        """The partitions of ``tps`` (those this instance reads) applied up to their end as
        of now; those not reached within the timeout, or whose end is unknown, are left
        out."""
        wanted = [tp for tp in set(tps) if self.reads(tp)]
        if not wanted:
            return set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            ends = await asyncio.wait_for(self._end_offsets(wanted), self.timeout_s)
        except Exception:  # no end offset, no proof the ledger is current: fail closed
            return set()
        while True:
            reached = {tp for tp in wanted if self._applied.get(tp, -1) >= ends[tp]}
            remaining = deadline - loop.time()
            if len(reached) == len(wanted) or remaining <= 0:
                return reached
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), remaining)
