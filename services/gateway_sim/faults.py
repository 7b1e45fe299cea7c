"""Seeded fault decisions: which request fails, is throttled or is answered too late.

Pure: a ``random.Random`` seeded once, one draw per provider request, so a given
seed and request order always give the same faults.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

UNDELIVERED_CODES = (30003, 30006)  # unreachable handset; landline / unreachable carrier


class Fault(enum.Enum):
    NONE = "none"
    FAIL_500 = "fail_500"  # refused, never processed
    FAIL_503 = "fail_503"  # refused, never processed
    THROTTLE = "throttle"  # 429 + Retry-After, never processed
    TIMEOUT = "timeout"  # processed (accepted), answered too late
    # Processed (accepted, ledgered, delivered), but a proxy in front answers 502.
    ERROR_AFTER_ACCEPT = "error_after_accept"

    @property
    def refuses(self) -> bool:
        """True when the request is answered without being processed."""
        return self in (Fault.FAIL_500, Fault.FAIL_503, Fault.THROTTLE)


_RATES = (
    "fail_rate",
    "throttle_rate",
    "timeout_rate",
    "error_after_accept_rate",
    "undelivered_rate",
)
# The request faults share one draw, so their rates must not add up to more than 1.
_REQUEST_RATES = ("fail_rate", "throttle_rate", "timeout_rate", "error_after_accept_rate")
_FLAGS = ("down",)
_DURATIONS = ("latency_ms", "timeout_delay_ms", "callback_delay_ms")


@dataclass(frozen=True)
class FaultConfig:
    """Fault rates and timings; can be changed at runtime via ``POST /_sim/config``."""

    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    undelivered_rate: float = 0.0
    latency_ms: float = 0.0
    timeout_delay_ms: float = 5000.0
    callback_delay_ms: float = 50.0
    retry_after_s: int = 1
    error_after_accept_rate: float = 0.0
    # An outage: every provider request's connection is closed without an answer.
    down: bool = False

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if sum(getattr(self, name) for name in _REQUEST_RATES) > 1.0:
            raise ValueError(f"{' + '.join(_REQUEST_RATES)} must not exceed 1")
        for name in _DURATIONS:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite, non-negative number")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")

    def updated(self, changes: Mapping[str, object]) -> FaultConfig:
        """A copy with ``changes`` applied; unknown names or wrong types raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        values: dict[str, float | int | bool] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            if name in _FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                values[name] = value
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if name == "retry_after_s":
                if value != int(value):
                    raise ValueError("retry_after_s must be a whole number of seconds")
                values[name] = int(value)
            else:
                values[name] = float(value)
        return dataclasses.replace(self, **values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


class DeliveryOutcome(NamedTuple):
    status: Literal["delivered", "undelivered"]
    error_code: int | None


class FaultInjector:
    """Decides faults per request and the final delivery status per accepted message.

    Requests and deliveries draw from two generators so the fault sequence does
    not depend on how many messages were accepted.
    """

    def __init__(self, config: FaultConfig, seed: int | None = None) -> None:
        self.config = config
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        self._requests = random.Random(seed)
        self._deliveries = random.Random(None if seed is None else seed + 1)

    def decide(self) -> Fault:
        """One draw per provider request; the bands are fail, throttle, timeout, error after
        accept, none."""
        draw = self._requests.random()
        cfg = self.config
        if draw < cfg.fail_rate:
            # Split the fail band so both 500 and 503 occur, still with a single draw.
            return Fault.FAIL_500 if draw < cfg.fail_rate / 2 else Fault.FAIL_503
        draw -= cfg.fail_rate
        if draw < cfg.throttle_rate:
            return Fault.THROTTLE
        draw -= cfg.throttle_rate
        if draw < cfg.timeout_rate:
            return Fault.TIMEOUT
        draw -= cfg.timeout_rate
        if draw < cfg.error_after_accept_rate:
            return Fault.ERROR_AFTER_ACCEPT
        return Fault.NONE

    def delivery(self) -> DeliveryOutcome:
        draw = self._deliveries.random()
        if draw < self.config.undelivered_rate:
            code = UNDELIVERED_CODES[self._deliveries.randrange(len(UNDELIVERED_CODES))]
            return DeliveryOutcome("undelivered", code)
        return DeliveryOutcome("delivered", None)
