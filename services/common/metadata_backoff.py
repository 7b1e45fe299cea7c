"""A pause after a failed metadata refresh in aiokafka, so a stopped broker is not polled
in a tight loop.

aiokafka (0.14.0) refreshes metadata in one background task per client. When no broker
answers, the refresh fails at once, and the producer's sender and the consumer's fetcher ask
for the next one straight away: every client polled the stopped broker thousands of times a
second, with two ERROR lines each (120,000 lines from one service in a 30 s outage), and took
a core from the services still working. A failed refresh now waits ``retry_backoff_ms`` (the
client's own setting, 100 ms by default) before it reports, which paces every caller.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiokafka.client import AIOKafkaClient

_MARK = "_smsflow_paced"


def pace_failed_metadata_refreshes() -> None:
    """Idempotent; applies to every aiokafka client of the process."""
    original = AIOKafkaClient._metadata_update
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    async def paced(self: AIOKafkaClient, *args: Any, **kwargs: Any) -> Any:
        updated = await original(self, *args, **kwargs)
        if not updated:
            await asyncio.sleep(self._retry_backoff)
        return updated

    setattr(paced, _MARK, True)
    AIOKafkaClient._metadata_update = paced
