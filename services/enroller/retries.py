"""Retrying a record's handling in place before it is given up on (dead-lettered).

Invalid records (``DecodeError``, ``InvalidRecord``) are permanent: never retried. Anything
else may be transient (a producer hiccup) and gets a few bounded attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.codec import DecodeError
from services.common.logging import get_logger

from .engine import InvalidRecord

log = get_logger("services.enroller")
T = TypeVar("T")
ATTEMPTS = 3
PAUSE_S = 0.2  # times the attempt number


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except (DecodeError, InvalidRecord):
            raise
        except Exception as exc:
            if number == ATTEMPTS:
                raise
            log.warning("record_retried", attempt=number, error=repr(exc))
            await asyncio.sleep(PAUSE_S * number)
    raise AssertionError("unreachable")  # pragma: no cover
