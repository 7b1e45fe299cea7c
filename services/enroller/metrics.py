"""Prometheus metrics of the enroller (process-wide, served on ``/metrics``)."""

from __future__ import annotations

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
    "Time to handle one record",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)
