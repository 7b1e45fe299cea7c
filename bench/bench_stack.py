"""The whole product: contact changes in, SMS delivered through the gateway simulator.

Starts a stack with ``smsflow dev up`` machinery (its own state dir, free ports and topic
prefix, on the given broker), applies a subscribe -> mark marketing -> send workflow,
publishes ``COUNT`` contact changes at once and times each until its ``delivered`` status
is read back. Bounded: ``COUNT`` contacts, ``WAIT_S`` seconds at most; loopback only.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from schemas.contacts import ContactChange
from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.topics import CONTACT_CHANGES, SMS_STATUS
from services.common.codec import decode
from services.control.apply import apply_paths
from services.control.console import quiet_logs
from services.control.dev import Stack
from services.control.kafka import make_producer, send_model
from services.control.ports import free_port
from services.control.stack import StackSettings

COUNT = 300
WAIT_S = 45.0

DEFINITIONS = """
apiVersion: smsflow/v1
kind: Account
metadata: {id: bench}
spec:
  sms_access: true
  sender: "+358451234567"
  default_region: FI
  quiet_hours: null
  subscription_types: [{id: sms-marketing, name: Marketing SMS}]
---
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {id: hello, account: bench}
spec: {name: Hello, body: "Hei {{ contact.firstname }}!", subscription_type: sms-marketing,
       state: published}
---
apiVersion: smsflow/v1
kind: Workflow
metadata: {id: hello-flow, account: bench}
spec:
  enabled: true
  enrollment:
    criteria: [[{property: lifecyclestage, operator: eq, value: customer}]]
  actions:
    - {type: manage_subscription, subscription_type: sms-marketing, status: subscribed,
       legal_basis: CONSENT_WITH_NOTICE, legal_basis_explanation: "Signed up for SMS",
       processing_legal_basis: PROCESS_AND_STORE}
    - {type: set_marketing_contact_status, marketing: true}
    - {type: send_sms, message: hello}
"""


@contextlib.contextmanager
def running_stack(
    bootstrap: str, only: Collection[str] | None = None
) -> Iterator[tuple[StackSettings, Stack]]:
    """A stack of its own on ``bootstrap`` (state dir, free ports, topic prefix; ``only``
    these parts) with ``DEFINITIONS`` applied; stopped and its data removed on exit."""
    quiet_logs("bench")
    state = Path(tempfile.mkdtemp(prefix="smsflow-bench-"))
    env = dict(os.environ)
    env.update(
        {
            "SMSFLOW_STATE_DIR": str(state),
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SMSFLOW_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}.",
            "SMSFLOW_GATEWAY_SIM_PORT": str(free_port()),
            "SMSFLOW_ENROLLER_PORT": str(free_port()),
            "SMSFLOW_ACTION_RUNNER_PORT": str(free_port()),
            "SMSFLOW_SENDER_PORT": str(free_port()),
            "SMSFLOW_DASHBOARD_PORT": str(free_port()),
        }
    )
    saved = dict(os.environ)
    os.environ.update(env)  # settings are read from the environment, as dev up does
    try:
        settings = StackSettings.from_environ(env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    stack = Stack(settings, environ=env, say=lambda _: None)
    try:
        stack.up(only)
        (state / "defs.yaml").write_text(DEFINITIONS)
        if apply_paths(settings, [state / "defs.yaml"], out=sys.stderr) != 0:
            raise RuntimeError("apply failed")
        yield settings, stack
    finally:
        stack.down(purge=True)


def run(bootstrap: str) -> dict[str, float]:
    began = time.perf_counter()
    with running_stack(bootstrap) as (settings, _):
        dev_up_s = time.perf_counter() - began
        return {"stack_dev_up_s": dev_up_s, **_measure(settings)}


def _measure(settings: StackSettings) -> dict[str, float]:
    topic = settings.topic(SMS_STATUS)
    consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:
        consumer.position(tp)
    producer = make_producer(settings)
    sent_at: dict[str, float] = {}
    for i in range(COUNT):
        contact = f"c{i}"
        change = ContactChange(
            account_id="bench",
            contact_id=contact,
            properties={
                "firstname": f"Nr{i}",
                "mobilephone": f"+35840{5000000 + i}",
                "lifecyclestage": "customer",
            },
        )
        sent_at[contact] = time.perf_counter()
        send_model(producer, settings.topic(CONTACT_CHANGES), change)
    producer.flush()
    producer.close()
    first = min(sent_at.values())
    latencies: dict[str, float] = {}
    deadline = first + WAIT_S
    while len(latencies) < COUNT and time.perf_counter() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            now = time.perf_counter()
            for record in records:
                event = decode(SmsStatusEvent, record.value)
                if event.status is SmsStatus.DELIVERED and event.contact_id not in latencies:
                    latencies[event.contact_id] = now - sent_at[event.contact_id]
    consumer.close()
    if not latencies:
        raise RuntimeError(f"no SMS delivered within {WAIT_S:.0f}s")
    elapsed = max(sent_at[c] + lat for c, lat in latencies.items()) - first
    ordered = sorted(latencies.values())
    return {
        "stack_sms_delivered": float(len(latencies)),
        "stack_sms_per_s": len(latencies) / elapsed,
        "stack_latency_p50_ms": statistics.median(ordered) * 1000,
        "stack_latency_p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
    }


if __name__ == "__main__":
    figures = run(os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    for name, value in figures.items():
        print(f"{name:<32} {value:,.1f}")
