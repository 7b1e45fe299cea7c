from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.sms_sender.gateway import Accepted, Ambiguous, Refused, Rejected
from services.sms_sender.retries import (
    AMBIGUOUS_OUTCOME,
    GATEWAY_UNAVAILABLE,
    RETRIES_EXHAUSTED,
    AwaitCallback,
    Finish,
    Retry,
    RetryPolicy,
    Wait,
    backoff_s,
    next_step,
    parse_retry_after,
)

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=4, base_s=0.5, cap_s=8.0)


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_full_jitter_below_the_capped_exponential(attempt: int, seed: int) -> None:
    delay = backoff_s(attempt, base_s=0.5, cap_s=8.0, rng=random.Random(seed))
    assert 0.0 <= delay <= min(8.0, 0.5 * 2 ** (attempt - 1))


def test_backoff_grows_then_stays_capped_and_is_seedable() -> None:
    def mean(attempt: int) -> float:
        rng = random.Random(7)
        return sum(backoff_s(attempt, base_s=1, cap_s=8, rng=rng) for _ in range(2000)) / 2000

    means = [mean(a) for a in (1, 2, 3, 4, 5, 9)]
    assert means[0] == pytest.approx(0.5, abs=0.05)
    assert means[1] == pytest.approx(1.0, abs=0.1)
    assert means[2] == pytest.approx(2.0, abs=0.2)
    assert means[3] == pytest.approx(4.0, abs=0.3)
    assert means[4] == pytest.approx(4.0, abs=0.3)  # capped at 8: mean 4
    assert means[5] == pytest.approx(4.0, abs=0.3)
    assert backoff_s(3, base_s=1, cap_s=8, rng=random.Random(1)) == backoff_s(
        3, base_s=1, cap_s=8, rng=random.Random(1)
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def _step(outcome, attempt: int = 1, dedupes: bool = True, before: bool = False):  # type: ignore[no-untyped-def]
    return next_step(
        outcome,
        attempt=attempt,
        dedupes=dedupes,
        policy=POLICY,
        rng=random.Random(3),
        ambiguous_before=before,
    )


def test_accepted_and_rejected_settle_at_once() -> None:
    accepted = Accepted("SM1", 1)
    assert _step(accepted) == Finish(accepted=accepted)
    rejected = Rejected("21211", 400, "invalid To")
    step = _step(rejected)
    assert isinstance(step, Finish)
    assert (step.reason, step.error_code, step.rejected) == (
        "invalid_phone_number",
        "21211",
        rejected,
    )


def test_opt_out_rejection_is_flagged() -> None:
    assert Rejected("21610", 400).opted_out
    assert Rejected("21610", 400).reason == "recipient_opted_out"
    assert not Rejected("21211", 400).opted_out


@given(st.integers(min_value=0, max_value=120), st.integers(min_value=1, max_value=3))
def test_throttling_waits_at_least_retry_after(retry_after: int, attempt: int) -> None:
    step = _step(Refused("throttled", 429, "20429", float(retry_after)), attempt=attempt)
    assert isinstance(step, Retry)
    assert retry_after <= step.delay_s <= retry_after + POLICY.cap_s


def test_refusals_retry_until_attempts_run_out() -> None:
    refused = Refused("http_503", 503, "20503")
    assert isinstance(_step(refused, attempt=3), Retry)
    final = _step(refused, attempt=4)
    assert final == Finish(reason=RETRIES_EXHAUSTED, error_code="20503")


def test_a_retry_after_beyond_the_bound_waits_uncounted_until_the_give_up_age() -> None:
    step = _step(Refused("throttled", 429, "20429", 3600.0), attempt=4)
    assert isinstance(step, Wait)
    assert 3600.0 <= step.delay_s <= 3600.0 + POLICY.cap_s
    late = next_step(
        Refused("throttled", 429, "20429", 3600.0),
        attempt=1,
        dedupes=True,
        policy=POLICY,
        rng=random.Random(3),
        age_s=POLICY.give_up_after_s - 60,
    )
    assert late == Finish(reason=RETRIES_EXHAUSTED, error_code="20429")


@pytest.mark.parametrize("reason", ["connection_failed", "connect_timeout"])
def test_an_unreachable_gateway_is_waited_out_whatever_the_attempt(reason: str) -> None:
    step = _step(Refused(reason), attempt=40)
    assert isinstance(step, Wait)
    assert step.reason == GATEWAY_UNAVAILABLE
    old = next_step(
        Refused(reason),
        attempt=1,
        dedupes=True,
        policy=POLICY,
        rng=random.Random(3),
        age_s=POLICY.give_up_after_s,
    )
    assert old == Finish(reason=RETRIES_EXHAUSTED)


def test_a_5xx_is_ambiguous_where_the_api_does_not_deduplicate() -> None:
    proxy_502 = Ambiguous("http_502", 502)
    assert _step(proxy_502, dedupes=False) == AwaitCallback("http_502")
    assert isinstance(_step(proxy_502, dedupes=True), Retry)  # same key: the first answer


def test_past_the_gateways_idempotency_window_a_resend_is_not_safe() -> None:
    step = next_step(
        Ambiguous("connection_lost"),
        attempt=1,
        dedupes=True,
        policy=POLICY,
        rng=random.Random(3),
        replay_safe=False,
    )
    assert step == AwaitCallback("connection_lost")


def test_ambiguous_is_resent_only_where_the_api_deduplicates() -> None:
    assert isinstance(_step(Ambiguous("timeout"), dedupes=True), Retry)
    assert _step(Ambiguous("timeout"), dedupes=False) == AwaitCallback("timeout")


def test_giving_up_after_an_ambiguous_attempt_says_so() -> None:
    assert _step(Ambiguous("timeout"), attempt=4).reason == AMBIGUOUS_OUTCOME  # type: ignore[union-attr]
    late_refusal = _step(Refused("http_500", 500), attempt=4, before=True)
    assert isinstance(late_refusal, Finish)
    assert late_refusal.reason == AMBIGUOUS_OUTCOME
