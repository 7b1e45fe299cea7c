"""How often, and how patiently, outputs the broker refused are sent again.

Invalid records (``DecodeError``, ``InvalidRecord``) are never retried: they are
dead-lettered at once. A refused send may be transient (a producer hiccup, a leader
moving) and gets a few bounded attempts before its record is given up on (dead-lettered).
"""

from __future__ import annotations

ATTEMPTS = 3
PAUSE_S = 0.2  # times the attempt number
