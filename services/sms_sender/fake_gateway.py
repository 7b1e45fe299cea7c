"""An in-memory gateway for unit tests: scripted outcomes, every call recorded."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable

from schemas.sms import SmsRequest
from services.sms_sender.gateway import Accepted, SendOutcome


class FakeGateway:
    def __init__(self, api: str = "http", dedupes: bool = True, latency_s: float = 0.0) -> None:
        self.api = api
        self.dedupes = dedupes
        self.latency_s = latency_s
        self.calls: list[tuple[str, str]] = []  # (idempotency key, status callback)
        self._scripts: dict[str, deque[SendOutcome]] = defaultdict(deque)
        self._accepted: dict[str, Accepted] = {}

    def script(self, key: str, outcomes: Iterable[SendOutcome]) -> None:
        """The next outcomes for ``key``; once used up, sends are accepted."""
        self._scripts[key].extend(outcomes)

    def calls_for(self, key: str) -> int:
        return sum(1 for k, _ in self.calls if k == key)

    async def send(self, request: SmsRequest, status_callback: str) -> SendOutcome:
        key = request.idempotency_key
        self.calls.append((key, status_callback))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self._scripts[key]:
            return self._scripts[key].popleft()
        if self.dedupes and key in self._accepted:
            return self._accepted[key]
        accepted = Accepted(f"fake_{len(self.calls)}", request.segments)
        self._accepted[key] = accepted
        return accepted

    async def close(self) -> None:
        return None
