"""Due-time bookkeeping for delays and deferrals, and the wake-up at the earliest due time.

The durable truth is each contact's state (``Enrollment.due``, in the changelog-backed
table); this in-memory heap only says which contacts to look at next. It is rebuilt from
the table whenever the partition assignment changes, and stale entries (an enrollment that
ended early) are dropped when popped, because the state is read again before anything fires.

``wait`` sleeps until the earliest due time (or ``longest``, for other bookkeeping) and is
woken early when a nearer timer is scheduled, so a delay ends when it is due rather than at
the next turn of a periodic scan.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable


class TimerQueue:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._heap: list[tuple[float, str]] = []
        self._next: dict[str, float] = {}  # earliest due queued per key
        self._clock = clock
        self._wake: asyncio.Event | None = None  # made by the first ``wait`` (on its loop)
        self._waking_at = math.inf  # when the current ``wait`` returns unless woken

    def __len__(self) -> int:
        return len(self._next)

    def schedule(self, key: str, due: float | None) -> None:
        if due is None or not math.isfinite(due):
            return
        current = self._next.get(key)
        if current is not None and current <= due:
            return
        self._next[key] = due
        heapq.heappush(self._heap, (due, key))
        if due < self._waking_at and self._wake is not None:
            self._waking_at = due
            self._wake.set()

    def wake(self) -> None:
        """End the current ``wait`` now (other work is ready: a new assignment)."""
        if self._wake is not None:
            self._waking_at = -math.inf
            self._wake.set()

    def pop_due(self, now: float, limit: int = 10_000) -> list[str]:
        """Keys with something due at ``now``, each once, earliest first."""
        keys: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(keys) < limit:
            due, key = heapq.heappop(heap)
            if self._next.get(key) == due:
                del self._next[key]
                keys.append(key)
        return keys

    def next_due(self) -> float | None:
        while self._heap and self._next.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def wait(self, longest: float) -> None:
        """Return at the earliest due time, when a nearer one is scheduled, or after
        ``longest`` seconds, whichever comes first."""
        if self._wake is None:
            self._wake = asyncio.Event()
        now = self._clock()
        due = self.next_due()
        self._waking_at = now + longest if due is None else min(now + longest, due)
        delay = self._waking_at - now
        if delay <= 0:
            # Still a suspension point: a caller looping on overdue timers it cannot fire
            # yet must not starve the event loop (the rebalance runs on it).
            self._waking_at = math.inf
            await asyncio.sleep(0)
            return
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass
        finally:
            self._waking_at = math.inf

    def clear(self) -> None:
        self._heap.clear()
        self._next.clear()
