"""The gateway's circuit breaker: opens on an outage, not on random faults; probes; closes."""

from __future__ import annotations

from services.sms_sender.circuit_breaker import CircuitBreaker


def test_an_outage_opens_it_and_only_one_probe_goes_per_cooldown() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=1.0, max_cooldown_s=4.0)
    for n in range(3):
        assert breaker.wait_s(float(n) / 10) == 0.0
        breaker.failed(float(n) / 10)
    assert breaker.is_open
    assert breaker.wait_s(0.5) > 0  # held back
    assert breaker.wait_s(1.3) == 0.0  # cool-down over: the probe goes
    assert breaker.wait_s(1.31) > 0  # the others wait for it
    breaker.failed(1.4)  # the probe failed: twice as long
    assert 1.9 < breaker.wait_s(1.4) <= 2.0
    breaker.failed(3.5)
    breaker.failed(8.0)
    assert breaker.wait_s(8.0) == 4.0  # capped
    assert breaker.wait_s(12.0) == 0.0
    breaker.succeeded(12.1)  # an answer: closed
    assert not breaker.is_open
    assert breaker.wait_s(12.2) == 0.0


def test_random_faults_among_answers_keep_it_closed() -> None:
    breaker = CircuitBreaker(threshold=10)
    now = 0.0
    for n in range(1000):
        now += 0.001
        if n % 10 < 3:
            breaker.failed(now)  # 30 % faults, in bursts of three
        else:
            breaker.succeeded(now)
    assert not breaker.is_open


def test_a_burst_of_failures_after_a_quiet_spell_opens_it() -> None:
    breaker = CircuitBreaker(threshold=5, window_s=5.0)
    for n in range(20):
        breaker.succeeded(n * 0.1)
    for n in range(30):
        breaker.failed(10.0 + n * 0.01)  # the successes are out of the window by now
    assert breaker.is_open


def test_holding_is_the_cool_down_only() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=1.0)
    assert not breaker.holding(0.0)
    breaker.failed(0.0)
    assert breaker.holding(0.5)
    assert not breaker.holding(1.5)  # a probe is due: not held
