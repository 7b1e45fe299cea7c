"""All retry policy: error kinds, capped exponential backoff with full jitter, Retry-After,
and the next step after each gateway outcome. Pure: time and randomness come in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from services.sms_sender.gateway import Accepted, Ambiguous, Rejected, SendOutcome


class TransientError(Exception):
    """Retry me, in place and bounded (a Kafka write that timed out, a refused send)."""


class PermanentError(Exception):
    """Do not retry: record the failure (dead letter, ``failed`` status) and go on."""


def backoff_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))] for attempt 1, 2, ..."""
    ceiling = min(cap_s, base_s * 2 ** max(attempt - 1, 0))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    # Answers that blame this request (5xx, 409, 429 with a short Retry-After) are counted.
    max_attempts: int = 6
    base_s: float = 0.25
    cap_s: float = 30.0
    # A longer Retry-After is a pause of the provider, not of this request: the SMS waits
    # (reported ``deferred``) instead of being counted as a failed attempt.
    max_retry_after_s: float = 300.0
    # An SMS still not accepted this long after it was requested fails; until then an
    # unreachable gateway or a long Retry-After is waited out.
    give_up_after_s: float = 86400.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Wait before the attempt after ``attempt``: at least Retry-After, plus jitter."""
        jitter = backoff_s(attempt, base_s=self.base_s, cap_s=self.cap_s, rng=rng)
        return jitter if retry_after_s is None else retry_after_s + jitter


@dataclass(frozen=True)
class Retry:
    delay_s: float
    reason: str


@dataclass(frozen=True)
class Finish:
    """Settle the key: ``accepted`` or failed with ``reason`` / ``error_code``."""

    accepted: Accepted | None = None
    reason: str | None = None
    error_code: str | None = None
    rejected: Rejected | None = None


@dataclass(frozen=True)
class Wait:
    """Not this request's fault (the gateway is unreachable, or paused us for long): wait,
    then send again with the same key; the attempt is not counted against the limit."""

    delay_s: float
    reason: str


@dataclass(frozen=True)
class AwaitCallback:
    """Ambiguous where a resend is not safe: never resend, wait for a callback."""

    reason: str


Step = Retry | Wait | Finish | AwaitCallback

AMBIGUOUS_OUTCOME = "ambiguous_outcome"
RETRIES_EXHAUSTED = "retries_exhausted"
GATEWAY_UNAVAILABLE = "gateway_unavailable"
# Transport failures that say nothing about the message, only that the gateway is away.
UNREACHABLE = frozenset({"connection_failed", "connect_timeout", "connection_lost"})


def next_step(
    outcome: SendOutcome,
    *,
    attempt: int,
    dedupes: bool,
    policy: RetryPolicy,
    rng: random.Random,
    ambiguous_before: bool = False,
    age_s: float = 0.0,
    replay_safe: bool = True,
) -> Step:
    """What to do after counted attempt number ``attempt`` (1-based) ended with ``outcome``.

    ``age_s`` is how long ago the SMS was requested; ``replay_safe`` is False once the
    gateway may have forgotten the key (its idempotency window has passed).
    """
    if isinstance(outcome, Accepted):
        return Finish(accepted=outcome)
    if isinstance(outcome, Rejected):
        return Finish(reason=outcome.reason, error_code=outcome.error_code, rejected=outcome)
    if isinstance(outcome, Ambiguous) and not (dedupes and replay_safe):
        return AwaitCallback(outcome.reason)
    # Refused, or ambiguous on an API that replays the first answer for the same key.
    may_have_been_sent = ambiguous_before or isinstance(outcome, Ambiguous)
    give_up = Finish(
        reason=AMBIGUOUS_OUTCOME if may_have_been_sent else RETRIES_EXHAUSTED,
        error_code=outcome.error_code,
    )
    retry_after = outcome.retry_after_s
    if age_s + (retry_after or 0.0) >= policy.give_up_after_s:
        return give_up
    if outcome.reason in UNREACHABLE:
        return Wait(policy.delay_s(attempt, None, rng), GATEWAY_UNAVAILABLE)
    if retry_after is not None and retry_after > policy.max_retry_after_s:
        return Wait(policy.delay_s(attempt, retry_after, rng), outcome.reason)
    if attempt >= policy.max_attempts:
        return give_up
    return Retry(policy.delay_s(attempt, retry_after, rng), outcome.reason)
