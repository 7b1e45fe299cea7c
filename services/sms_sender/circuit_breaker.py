"""A circuit breaker in front of the gateway. Pure: ``now`` (monotonic seconds) comes in.

Closed: calls go. It opens when, over the last ``window_s``, at least ``threshold`` calls
failed (no connection, no answer, 5xx) and nearly all calls did (``ratio``): a gateway
that is away, not one with a share of random faults, whose failures come in bursts when
many requests time out together. Open: no call goes until the cool-down ends; then one
probe may go per cool-down (half-open). An answer closes it; a failed probe opens it again
for twice as long (capped). An outage thus costs a handful of requests, not a storm.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    threshold: int = 10
    cooldown_s: float = 1.0
    max_cooldown_s: float = 15.0
    window_s: float = 5.0
    ratio: float = 0.9
    open_until: float | None = field(default=None, init=False)
    probe_started: float | None = field(default=None, init=False)
    _cooldown: float = field(default=0.0, init=False)
    _recent: deque[tuple[float, bool]] = field(default_factory=deque, init=False)

    @property
    def is_open(self) -> bool:
        """True while calls are held back (open or half-open)."""
        return self.open_until is not None

    @property
    def failures(self) -> int:
        return sum(1 for _, ok in self._recent if not ok)

    def holding(self, now: float) -> bool:
        """Open and still cooling down (no probe due): a call now would be wasted."""
        return self.open_until is not None and now < self.open_until

    def wait_s(self, now: float) -> float:
        """Seconds until a call may go; 0 means go now (when half-open: as the probe)."""
        if self.open_until is None:
            return 0.0
        if now < self.open_until:
            return self.open_until - now
        # One probe per cool-down: a probe that never reports (its SMS was settled or
        # skipped before the call) does not hold the others back for longer.
        if self.probe_started is not None and now - self.probe_started < self._cooldown:
            return self.probe_started + self._cooldown - now
        self.probe_started = now
        return 0.0

    def succeeded(self, now: float) -> None:
        """The gateway answered (anything but a 5xx): it is there."""
        self._remember(now, True)
        self.open_until = self.probe_started = None
        self._cooldown = 0.0

    def failed(self, now: float) -> None:
        self._remember(now, False)
        if self.open_until is not None:
            if now >= self.open_until:  # the probe failed: open again, for longer
                self._open(now, min(self._cooldown * 2, self.max_cooldown_s))
            return
        failures = self.failures
        if failures >= self.threshold and failures >= self.ratio * len(self._recent):
            self._open(now, self.cooldown_s)

    def _open(self, now: float, cooldown_s: float) -> None:
        self._cooldown = cooldown_s
        self.open_until = now + cooldown_s
        self.probe_started = None

    def _remember(self, now: float, ok: bool) -> None:
        self._recent.append((now, ok))
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()
