"""How often, and how patiently, outputs the broker refused are sent again.

Invalid records (``DecodeError``, ``InvalidRecord``) are never retried: they are
dead-lettered at once. The broker being away (a restart) is not the record's fault: the
send waits, with a growing pause, for as long as the outage lasts, and those waits use up
no attempt. Any other refusal may be transient (a producer hiccup, a leader moving) and gets
a few bounded attempts before its record is given up on (dead-lettered).
"""

from __future__ import annotations

ATTEMPTS = 3
PAUSE_S = 0.2  # times the attempt number
OUTAGE_PAUSE_S = (0.5, 5.0)  # first and longest pause while the broker is away


def outage_pause(waits: int) -> float:
    """The pause before the next try, after ``waits`` tries failed for a broker outage."""
    first, longest = OUTAGE_PAUSE_S
    return min(longest, first * 2**waits)
