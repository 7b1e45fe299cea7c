"""One task at a time per contact, across the agent and the timer.

A contact's record is read, decided, its outputs sent and only then written back, so a
failed send leaves the stored state as it was and the work is done again. Sending awaits,
so the agent and the timer could otherwise both read the same old record and the later
write would undo the earlier one; each holds the contact's key for the whole round.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyGuard:
    def __init__(self) -> None:
        # Keys being worked on -> a future the next waiter awaits (made only when one waits).
        self._held: dict[str, asyncio.Future[None] | None] = {}

    def __len__(self) -> int:
        return len(self._held)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        while key in self._held:
            waiter = self._held[key]
            if waiter is None:
                waiter = self._held[key] = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)
        self._held[key] = None
        try:
            yield
        finally:
            waiter = self._held.pop(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
