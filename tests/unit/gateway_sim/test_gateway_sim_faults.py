"""Seeded fault decisions and the fault configuration."""

from __future__ import annotations

from collections import Counter

import pytest

from services.gateway_sim.faults import UNDELIVERED_CODES, Fault, FaultConfig, FaultInjector


def _decisions(config: FaultConfig, seed: int | None, n: int) -> list[Fault]:
    injector = FaultInjector(config, seed)
    return [injector.decide() for _ in range(n)]


def test_same_seed_gives_same_faults() -> None:
    config = FaultConfig(fail_rate=0.2, throttle_rate=0.2, timeout_rate=0.2)
    assert _decisions(config, 7, 500) == _decisions(config, 7, 500)
    assert _decisions(config, 7, 500) != _decisions(config, 8, 500)


def test_no_faults_by_default() -> None:
    assert set(_decisions(FaultConfig(), 1, 1000)) == {Fault.NONE}


@pytest.mark.parametrize(
    ("config", "only"),
    [
        (FaultConfig(fail_rate=1.0), {Fault.FAIL_500, Fault.FAIL_503}),
        (FaultConfig(throttle_rate=1.0), {Fault.THROTTLE}),
        (FaultConfig(timeout_rate=1.0), {Fault.TIMEOUT}),
        (
            FaultConfig(fail_rate=0.5, throttle_rate=0.5),
            {Fault.FAIL_500, Fault.FAIL_503, Fault.THROTTLE},
        ),
    ],
)
def test_full_rates_always_fault(config: FaultConfig, only: set[Fault]) -> None:
    assert set(_decisions(config, 3, 2000)) == only


def test_rates_are_respected_roughly() -> None:
    config = FaultConfig(fail_rate=0.1, throttle_rate=0.2, timeout_rate=0.05)
    counts = Counter(_decisions(config, 42, 20_000))

    def share(*faults: Fault) -> float:
        return sum(counts[f] for f in faults) / 20_000

    assert share(Fault.FAIL_500, Fault.FAIL_503) == pytest.approx(0.1, abs=0.01)
    assert share(Fault.FAIL_500) == pytest.approx(0.05, abs=0.01)
    assert share(Fault.THROTTLE) == pytest.approx(0.2, abs=0.01)
    assert share(Fault.TIMEOUT) == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize(
    ("fault", "refuses"),
    [
        (Fault.NONE, False),
        (Fault.FAIL_500, True),
        (Fault.FAIL_503, True),
        (Fault.THROTTLE, True),
        (Fault.TIMEOUT, False),
    ],
)
def test_which_faults_refuse(fault: Fault, refuses: bool) -> None:
    assert fault.refuses is refuses


def test_deliveries_follow_undelivered_rate_with_carrier_codes() -> None:
    injector = FaultInjector(FaultConfig(undelivered_rate=0.3), seed=5)
    outcomes = [injector.delivery() for _ in range(5000)]
    undelivered = [o for o in outcomes if o.status == "undelivered"]

    assert len(undelivered) / 5000 == pytest.approx(0.3, abs=0.03)
    assert {o.error_code for o in undelivered} == set(UNDELIVERED_CODES)
    assert all(o.error_code is None for o in outcomes if o.status == "delivered")


def test_deliveries_do_not_shift_the_request_faults() -> None:
    config = FaultConfig(fail_rate=0.3, undelivered_rate=0.5)
    plain = _decisions(config, 9, 100)
    injector = FaultInjector(config, 9)
    mixed = []
    for _ in range(100):
        mixed.append(injector.decide())
        injector.delivery()
    assert mixed == plain


def test_reseed_restarts_the_sequence() -> None:
    config = FaultConfig(fail_rate=0.5)
    injector = FaultInjector(config, 11)
    first = [injector.decide() for _ in range(50)]
    injector.reseed(11)
    assert [injector.decide() for _ in range(50)] == first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_rate": -0.1},
        {"throttle_rate": 1.5},
        {"undelivered_rate": float("nan")},
        {"fail_rate": 0.6, "timeout_rate": 0.6},
        {"latency_ms": -1},
        {"timeout_delay_ms": float("inf")},
        {"retry_after_s": -1},
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case names a different field
        FaultConfig(**kwargs)  # type: ignore[arg-type]


def test_updated_changes_only_named_fields() -> None:
    config = FaultConfig(fail_rate=0.1, latency_ms=5)
    updated = config.updated({"throttle_rate": 0.2, "retry_after_s": 3})
    assert updated == FaultConfig(fail_rate=0.1, throttle_rate=0.2, latency_ms=5, retry_after_s=3)
    assert isinstance(updated.retry_after_s, int)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nope": 1}, "unknown setting"),
        ({"fail_rate": "0.5"}, "must be a number"),
        ({"fail_rate": True}, "must be a number"),
        ({"retry_after_s": 1.5}, "whole number"),
        ({"fail_rate": 2}, "between 0 and 1"),
    ],
)
def test_updated_refuses_bad_changes(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultConfig().updated(changes)


def test_error_after_accept_has_its_own_band_and_is_not_a_refusal() -> None:
    config = FaultConfig(error_after_accept_rate=1.0)
    assert set(_decisions(config, 3, 50)) == {Fault.ERROR_AFTER_ACCEPT}
    assert not Fault.ERROR_AFTER_ACCEPT.refuses  # the message was processed
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(fail_rate=0.5, error_after_accept_rate=0.6)


def test_down_is_a_flag_not_a_rate() -> None:
    assert FaultConfig().updated({"down": True}).down is True
    assert FaultConfig(down=True).updated({"down": False}).down is False
    with pytest.raises(ValueError, match="true or false"):
        FaultConfig().updated({"down": 1})
