"""Per sender number rate limits on messages and on segments: token buckets that go into
debt, so concurrent senders queue up in the order they asked. Pure: ``now`` comes in.

A number's limits come from its account (``AccountSpec.sender_rate``: a long code, a
toll-free number and a short code differ) or the service defaults. They hold across N
sender replicas: requests of a number spread over every partition of ``sms-requests``
(they are keyed by contact), so each replica takes the share of the limit that its share of
the partitions carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    capacity: float  # the burst allowed after a quiet spell
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.tokens = self.capacity

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` now; returns how many seconds to wait before using it."""
        if self.updated is not None:
            elapsed = max(now - self.updated, 0.0)
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(now, self.updated or now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


Limits = tuple[float, float]  # messages per second, segments per second; 0 = no limit


class RateLimiter:
    """Messages per second and segments per second, each per sender number; 0 = no limit.

    ``limits_for(sender)`` may name a number's own limits (None: the defaults), and
    ``share()`` is this replica's fraction of them (1.0 alone)."""

    def __init__(
        self,
        messages_per_s: float,
        segments_per_s: float,
        burst_s: float = 1.0,
        limits_for: Callable[[str], Limits | None] = lambda _: None,
        share: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self.messages_per_s = messages_per_s
        self.segments_per_s = segments_per_s
        self.burst_s = burst_s
        self.limits_for = limits_for
        self.share = share
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def reserve(self, sender: str, segments: int, now: float) -> float:
        """Seconds until one message of ``segments`` segments from ``sender`` may go."""
        messages_per_s, segments_per_s = self.limits_for(sender) or (
            self.messages_per_s,
            self.segments_per_s,
        )
        share = min(max(self.share(), 0.0), 1.0) or 1.0
        wait = 0.0
        for kind, rate, amount in (
            ("messages", messages_per_s * share, 1),
            ("segments", segments_per_s * share, segments),
        ):
            if rate > 0:
                wait = max(wait, self._bucket(sender, kind, rate).reserve(amount, now))
        return wait

    def _bucket(self, sender: str, kind: str, rate: float) -> TokenBucket:
        bucket = self._buckets.get((sender, kind))
        if bucket is None:
            bucket = TokenBucket(rate, max(rate * self.burst_s, 1.0))
            self._buckets[(sender, kind)] = bucket
        elif bucket.rate != rate:  # the share or the account's limits changed
            bucket.rate, bucket.capacity = rate, max(rate * self.burst_s, 1.0)
        return bucket
