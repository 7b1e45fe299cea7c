"""One task at a time per contact, across the record batches and the timer.

A contact's record is read, decided, its outputs sent and only then written back, so a
failed send leaves the stored state as it was and the work is done again. Sending awaits,
so a batch and the timer could otherwise both read the same old record and the later
write would undo the earlier one; each holds the contact's key for the whole round.
A batch holds all its keys at once; only one batch runs at a time (the agent's one task),
and the timer holds one key at a time, so no two holders can wait on each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class KeyGuard:
    def __init__(self) -> None:
        # Keys being worked on -> a future the next waiter awaits (made only when one waits).
        self._held: dict[str, asyncio.Future[None] | None] = {}

    def __len__(self) -> int:
        return len(self._held)

    async def _take(self, key: str) -> None:
        held = self._held
        while key in held:
            waiter = held[key]
            if waiter is None:
                waiter = held[key] = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)
        held[key] = None

    def _give(self, key: str) -> None:
        waiter = self._held.pop(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        await self._take(key)
        try:
            yield
        finally:
            self._give(key)

    async def acquire(self, keys: Iterable[str]) -> None:
        """Hold every key (a batch's); awaits only for keys someone else holds."""
        held = self._held
        taken: list[str] = []
        try:
            for key in keys:
                if key in held:
                    await self._take(key)
                else:
                    held[key] = None
                taken.append(key)
        except BaseException:  # cancelled while waiting: give back what was taken
            self.release(taken)
            raise

    def release(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._give(key)
