"""Which of two writes of one property wins: the later ``occurred_at``, as HubSpot keeps a
timestamp per property. Pure.

Delivery is at-least-once and a change may come back much later (a replay, a redelivery
after a rebalance), so arrival order proves nothing. A property keeps the value of the
change that happened last; an older change leaves it alone, whenever it arrives. Two writes
stamped with the same microsecond are ordered by their values (a cleared value first), so
the outcome does not depend on which one arrived first either.
"""

from __future__ import annotations

from datetime import datetime

import pydantic_core

from schemas.contacts import PropertyValue

# A change stamped further ahead than this is refused: accepted, it would freeze the
# properties it writes until that time, since every real change would be older.
FUTURE_TOLERANCE_S = 3600


def stamp_of(moment: datetime) -> int:
    """Epoch microseconds (exact, unlike a float of seconds)."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def wins(stamp: int, value: PropertyValue, held_stamp: int | None, held: PropertyValue) -> bool:
    """True when a write of ``value`` at ``stamp`` replaces ``held``, written at ``held_stamp``."""
    if held_stamp is None or stamp > held_stamp:
        return True
    if stamp < held_stamp:
        return False
    return _rank(value) > _rank(held)


def _rank(value: PropertyValue) -> tuple[int, bytes]:
    return (0, b"") if value is None else (1, pydantic_core.to_json(value))
