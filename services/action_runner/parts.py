"""What every handler of the runner shares: definitions, settings, clock, metrics, names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas.topics import TopicSpec
from services.action_runner.metrics import Metrics
from services.action_runner.settings import RunnerSettings
from services.common.catalog import Catalog


@dataclass
class Parts:
    settings: RunnerSettings
    catalog: Catalog
    clock: Callable[[], datetime]
    metrics: Metrics
    app_id: str  # the prefix of the runner's own topics

    def topic(self, topic: TopicSpec | str) -> str:
        """A contract topic's full name, or the full name of one of the runner's own."""
        if isinstance(topic, TopicSpec):
            return self.settings.topic(topic)
        return f"{self.app_id}-{topic}"

    def region(self, account_id: str) -> str | None:
        account = self.catalog.account(account_id)
        return account.spec.default_region if account else None

    async def await_known(self, known: Callable[[], bool]) -> None:
        """Definitions may arrive a moment after the records that name them: wait briefly
        (once per batch)."""
        deadline = time.monotonic() + self.settings.definitions_grace_s
        while not known() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
