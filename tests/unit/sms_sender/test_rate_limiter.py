from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.sms_sender.rate_limiter import RateLimiter, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, capacity=10)
    assert [bucket.reserve(1, 0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.reserve(1, 0.0) == pytest.approx(0.1)
    assert bucket.reserve(1, 0.0) == pytest.approx(0.2)  # queued behind the previous one
    assert bucket.reserve(1, 1.0) == pytest.approx(0.0, abs=1e-9)  # refilled meanwhile


def test_segments_count_against_the_segment_limit() -> None:
    limiter = RateLimiter(messages_per_s=100, segments_per_s=4)
    assert limiter.reserve("+1555", 3, 0.0) == 0.0
    assert limiter.reserve("+1555", 3, 0.0) == pytest.approx(0.5)  # 2 segments short at 4/s


def test_limits_are_per_sender_number() -> None:
    limiter = RateLimiter(messages_per_s=1, segments_per_s=0)
    assert limiter.reserve("+1555", 1, 0.0) == 0.0
    assert limiter.reserve("+1555", 1, 0.0) == pytest.approx(1.0)
    assert limiter.reserve("+1666", 1, 0.0) == 0.0


def test_zero_disables_a_limit() -> None:
    limiter = RateLimiter(messages_per_s=0, segments_per_s=0)
    assert all(limiter.reserve("+1555", 10, 0.0) == 0.0 for _ in range(1000))


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=6)),
        min_size=1,
        max_size=200,
    ),
    st.floats(min_value=1, max_value=50),
)
def test_sends_never_exceed_rate_plus_burst(
    arrivals: list[tuple[float, int]], segments_per_s: float
) -> None:
    """Whatever the arrivals, segments released by time t are <= burst + rate * t."""
    limiter = RateLimiter(messages_per_s=0, segments_per_s=segments_per_s)
    now, released = 0.0, []
    for gap, segments in arrivals:
        now += gap
        released.append((now + limiter.reserve("+1555", segments, now), segments))
    released.sort()
    total = 0
    capacity = max(segments_per_s, 1.0)
    for at, segments in released:
        total += segments
        assert total <= capacity + segments_per_s * at + 6 + 1e-6


def test_a_numbers_own_limits_and_this_replicas_share_apply() -> None:
    shares = [0.5]
    limiter = RateLimiter(
        100,
        0,
        limits_for=lambda sender: (10, 0) if sender == "+358451111111" else None,
        share=lambda: shares[0],
    )
    # Its own 10/s, halved for a replica owning half the partitions: 5/s, a burst of 5.
    waits = [limiter.reserve("+358451111111", 1, 0.0) for _ in range(10)]
    assert waits[4] == 0.0
    assert waits[9] == pytest.approx(1.0)
    assert limiter.reserve("+358452222222", 1, 0.0) == 0.0  # the default, 50/s here
    shares[0] = 1.0  # alone now: the whole limit
    assert limiter.reserve("+358451111111", 1, 10.0) == 0.0
