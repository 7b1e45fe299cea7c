"""Due-time bookkeeping for delays and deferrals.

The durable truth is each contact's state (``Enrollment.due``, in the changelog-backed
table); this in-memory heap only says which contacts to look at next, so a periodic scan
costs one peek while nothing is due. It is rebuilt from the table whenever the partition
assignment changes, and stale entries (an enrollment that ended early) are dropped when
popped, because the state is read again before anything fires.
"""

from __future__ import annotations

import heapq
import math


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._next: dict[str, float] = {}  # earliest due queued per key

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

    def clear(self) -> None:
        self._heap.clear()
        self._next.clear()
