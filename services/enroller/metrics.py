"""Prometheus metrics of the enroller (process-wide, served on ``/metrics``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "smsflow_enroller_records_total",
    "Records handled, by source topic and outcome",
    ["topic", "outcome"],
)
DECISIONS = Counter(
    "smsflow_enroller_decisions_total", "Enrollment decisions, by kind", ["decision"]
)
GOALS_MET = Counter(
    "smsflow_enroller_goal_conversions_total",
    "Contacts that met a workflow's goal and left it",
    ["account", "workflow"],
)
COMMANDS = Counter(
    "smsflow_enroller_commands_total", "Action commands sent, by action type", ["action"]
)
DEAD_LETTERS = Counter(
    "smsflow_enroller_dead_letters_total",
    "Records sent to dead-letters, by source topic",
    ["topic"],
)
TIMERS_FIRED = Counter(
    "smsflow_enroller_timers_fired_total", "Contacts whose delay or deferral ended"
)
TIMERS_PENDING = Gauge("smsflow_enroller_timers_pending", "Contacts waiting on a delay or deferral")
HANDLE_SECONDS = Histogram(
    "smsflow_enroller_record_seconds",
    "Time to handle one record: a batch's time per record, observed once per batch",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)


# Children cached: ``labels()`` takes a lock and builds a tuple on every call.
@cache
def _decision(decision: str) -> Any:
    return DECISIONS.labels(decision)


@cache
def _command(action: str) -> Any:
    return COMMANDS.labels(action)


@cache
def record_outcome(topic: str, outcome: str) -> Any:
    """The child of ``RECORDS`` for a (short) topic name and outcome."""
    return RECORDS.labels(topic, outcome)


def decided(decision: str) -> None:
    _decision(decision).inc()


def commanded(action: str) -> None:
    _command(action).inc()


def short(topic: str) -> str:
    """A topic's name without the deployment's prefix."""
    return topic.rsplit(".", 1)[-1]


class PipelineCounts:
    """The record pipeline's counts, as the enroller's metrics (handlers are named after
    their topic)."""

    def dead_lettered(self, topic: str) -> None:
        DEAD_LETTERS.labels(short(topic)).inc()
        record_outcome(short(topic), "dead_lettered").inc()

    def batch_handled(self, handler: str, records: int, seconds: float) -> None:
        record_outcome(handler, "handled").inc(records)
        HANDLE_SECONDS.observe(seconds / max(records, 1))
