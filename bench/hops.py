"""Where a contact's time goes through the whole stack, hop by hop.

    SMSFLOW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.hops [CONTACTS] [RATE]

One stack as ``bench_whole_stack`` runs it, and its workflow (subscribe, mark as marketing
contact, send). CONTACTS new customers (3,000 by default) are produced at RATE per second
(200). Once their SMS are accepted, every record of the contacts' topics is read back, and
each contact's first record of each kind is placed on a timeline that starts at its change:
record timestamps are the producing client's clock, and every process runs on this host.
Printed: each kind's p50 and p99 in ms, in the order a contact reaches them. Not part of
``make bench``: it explains the whole-stack latency rather than adding a figure.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.bench_stack import running_stack
from bench.bench_whole_stack import customer, percentile, produce, wait_accepted
from schemas.topics import (
    ACTION_RESULTS,
    ACTIONS,
    CONTACT_CHANGES,
    ENROLLMENT_EVENTS,
    SMS_REQUESTS,
    SMS_STATUS,
    TopicSpec,
)
from services.control.kafka import make_producer
from services.control.stack import StackSettings

TOPICS = (CONTACT_CHANGES, ENROLLMENT_EVENTS, ACTIONS, ACTION_RESULTS, SMS_REQUESTS, SMS_STATUS)


def kind(spec: TopicSpec, value: dict[str, Any]) -> str:
    """What a record is on a contact's way: the topic, and the step or status it is of."""
    if spec is ACTIONS:
        return f"{spec.name} step {value['step']} {value['action']['type']}"
    if spec is ACTION_RESULTS:
        return f"{spec.name} step {value['step']}"
    if spec is SMS_STATUS:
        return f"{spec.name} {value['status']}"
    return spec.name


def timelines(settings: StackSettings) -> dict[str, dict[str, int]]:
    """Contact -> kind -> the timestamp (ms) of its first record of that kind."""
    consumer = KafkaConsumer(**settings.client_config(), consumer_timeout_ms=3000)
    seen: dict[str, dict[str, int]] = defaultdict(dict)
    try:
        for spec in TOPICS:
            topic = settings.topic(spec)
            consumer.assign(
                [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            )
            consumer.seek_to_beginning()
            for record in consumer:
                value = json.loads(record.value)
                contact = value.get("contact_id")
                if contact is not None:
                    seen[contact].setdefault(kind(spec, value), record.timestamp)
    finally:
        consumer.close()
    return seen


def hops(seen: dict[str, dict[str, int]]) -> list[tuple[str, list[float]]]:
    """Per kind, each contact's ms since its change, ascending; kinds in median order."""
    since: dict[str, list[float]] = defaultdict(list)
    for kinds in seen.values():
        start = kinds.get(CONTACT_CHANGES.name)
        if start is not None:
            for name, stamp in kinds.items():
                since[name].append(stamp - start)
    return sorted(
        ((name, sorted(values)) for name, values in since.items()),
        key=lambda item: statistics.median(item[1]),
    )


def main(argv: list[str]) -> int:
    contacts = int(argv[0]) if argv else 3000
    rate = float(argv[1]) if len(argv) > 1 else 200.0
    bootstrap = os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    with running_stack(bootstrap) as (settings, _):
        producer = make_producer(settings, linger_ms=1)
        try:
            records = [customer("paced", i) for i in range(contacts)]
            produced = produce(producer, settings.topic(CONTACT_CHANGES), records, rate)
        finally:
            producer.close()
        wait_accepted(settings.gateway_url, produced)
        seen = timelines(settings)
    for name, values in hops(seen):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{name:<44} n={len(values):>6}  p50 {p50:>7,.0f} ms  p99 {p99:>7,.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
