"""Prometheus metrics of one runner (its own registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.actions = Counter(
            "smsflow_action_runner_actions_total",
            "Action commands handled, by action type, outcome and reason",
            ["action", "outcome", "reason"],
            registry=self.registry,
        )
        self.replays = Counter(
            "smsflow_action_runner_replayed_actions_total",
            "Commands already answered, received again and not run again",
            registry=self.registry,
        )
        self.consent_changes = Counter(
            "smsflow_action_runner_consent_changes_total",
            "Changes appended to the consent audit trail",
            ["source", "status"],
            registry=self.registry,
        )
        self.inbound = Counter(
            "smsflow_action_runner_inbound_total",
            "Inbound replies and gateway opt-outs, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "smsflow_action_runner_dead_letters_total",
            "Records sent to dead-letters, by source topic",
            ["topic"],
            registry=self.registry,
        )
        self.barrier_timeouts = Counter(
            "smsflow_action_runner_consent_barrier_timeouts_total",
            "Actions decided with the ledger treated as unreadable (fail closed)",
            registry=self.registry,
        )
        self.handle_seconds = Histogram(
            "smsflow_action_runner_handle_seconds",
            "Time to handle one batch of one partition (decide, send, write), by handler",
            ["agent"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
        )
        self.records = Counter(
            "smsflow_action_runner_records_total",
            "Records handled, by handler",
            ["agent"],
            registry=self.registry,
        )

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters.labels(topic).inc()

    def batch_handled(self, handler: str, records: int, seconds: float) -> None:
        self.records.labels(handler).inc(records)
        self.handle_seconds.labels(handler).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def reason_label(reason: str | None) -> str:
    """A bounded label: the reason's code, without any detail after a colon."""
    return (reason or "").split(":", 1)[0]
