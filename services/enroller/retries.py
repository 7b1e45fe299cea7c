"""Retrying a record's handling in place before it is given up on (dead-lettered).

Invalid records (``DecodeError``, ``InvalidRecord``) are permanent: never retried. The broker
being away (a restart) is not the record's fault: it waits, with a growing pause, for as long
as the outage lasts, and those waits use up no attempt. Anything else may be transient (a
producer hiccup) and gets a few bounded attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.broker_outage import broker_unavailable
from services.common.codec import DecodeError
from services.common.logging import get_logger

from .engine import InvalidRecord

log = get_logger("services.enroller")
T = TypeVar("T")
ATTEMPTS = 3
PAUSE_S = 0.2  # times the attempt number
OUTAGE_PAUSE_S = (0.5, 5.0)  # first and longest pause while the broker is away


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    number = 1
    waited = 0
    while True:
        try:
            return await attempt()
        except (DecodeError, InvalidRecord):
            raise
        except Exception as exc:
            if broker_unavailable(exc):
                pause = min(OUTAGE_PAUSE_S[1], OUTAGE_PAUSE_S[0] * 2**waited)
                waited += 1
                log.warning("kafka_unavailable_waiting", waits=waited, error=repr(exc))
                await asyncio.sleep(pause)
                continue
            if number == ATTEMPTS:
                raise
            log.warning("record_retried", attempt=number, error=repr(exc))
            await asyncio.sleep(PAUSE_S * number)
            number += 1
