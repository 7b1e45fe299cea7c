"""Prometheus metrics of one sender, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "smsflow_sender_requests",
            "SMS requests handled, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.gateway_calls = Counter(
            "smsflow_sender_gateway_calls",
            "Gateway calls, by result",
            ["result"],
            registry=self.registry,
        )
        self.gateway_seconds = Histogram(
            "smsflow_sender_gateway_seconds",
            "Gateway call latency",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.webhooks = Counter(
            "smsflow_sender_webhooks",
            "Webhook calls, by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "smsflow_sender_dead_letters", "Records dead-lettered", registry=self.registry
        )
        self.in_flight = Gauge(
            "smsflow_sender_in_flight",
            "Requests handed out, outcome not recorded",
            registry=self.registry,
        )
        self.ledger_keys = Gauge(
            "smsflow_sender_ledger_keys", "Keys in the in-memory ledger", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
