"""Which offsets may be committed: per partition, everything below the lowest offset whose
outcome is not yet recorded. Used on the sender's loop only: the consumer adds, the
dispatcher finishes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Partition:
    pending: deque[int] = field(default_factory=deque)  # handed out, in offset order
    open: set[int] = field(default_factory=set)  # handed out, outcome not yet recorded
    finished: set[int] = field(default_factory=set)  # finished but not yet at the front
    abandoned: set[int] = field(default_factory=set)  # never finished: left to the next owner
    next_offset: int | None = None  # commit position once everything before is finished
    committed: int | None = None


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        self._in_flight = 0

    def add(self, partition: int, offset: int) -> None:
        state = self._partitions.setdefault(partition, _Partition())
        state.pending.append(offset)
        state.open.add(offset)
        self._in_flight += 1

    def finish(self, partition: int, offset: int) -> None:
        """The outcome of ``offset`` is recorded (ignored for partitions given up)."""
        state = self._close(partition, offset)
        if state is None:
            return
        state.finished.add(offset)
        while state.pending and state.pending[0] in state.finished:
            done = state.pending.popleft()
            state.finished.discard(done)
            state.next_offset = done + 1

    def abandon(self, partition: int, offset: int) -> None:
        """``offset`` was left unhandled (its partition was revoked before the gateway was
        called): nothing at or after it is committed here, and drains do not wait for it."""
        state = self._close(partition, offset)
        if state is not None:
            state.abandoned.add(offset)

    def _close(self, partition: int, offset: int) -> _Partition | None:
        """``offset`` is no longer open; ``None`` if it was not (or its partition was given up)."""
        state = self._partitions.get(partition)
        if state is None or offset not in state.open:
            return None
        state.open.discard(offset)
        self._in_flight -= 1
        return state

    def restart_points(self, partitions: set[int]) -> dict[int, int]:
        """Partition -> the offset to fetch it again from, for those of ``partitions`` with
        abandoned requests: the lowest offset not finished, not the lowest abandoned one, so
        that requests still open below it are fetched again too (once the partition is
        forgotten their finishes no longer hold the commit back)."""
        return {
            p: s.pending[0] for p, s in self._partitions.items() if p in partitions and s.abandoned
        }

    def committable(self) -> dict[int, int]:
        """Partition -> offset to commit, for partitions that moved since the last commit."""
        return {
            p: s.next_offset
            for p, s in self._partitions.items()
            if s.next_offset is not None and s.next_offset != s.committed
        }

    def mark_committed(self, offsets: dict[int, int]) -> None:
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def pending(self, partitions: set[int] | None = None) -> int:
        if partitions is None:
            return self._in_flight
        return sum(len(s.open) for p, s in self._partitions.items() if p in partitions)

    def forget(self, partitions: set[int]) -> None:
        """Give up partitions (revoked): their late finishes are ignored."""
        for partition in partitions:
            state = self._partitions.pop(partition, None)
            if state is not None:
                self._in_flight -= len(state.open)
