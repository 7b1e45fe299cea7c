"""The dashboard keeps up with 1,000 status events a second and stays responsive meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.topics import SMS_STATUS
from services.common.codec import encode
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer
from tests.integration.control.dashboard_process import get_json, running_dashboard

pytestmark = pytest.mark.integration

RATE = 1000  # status events per second
SECONDS = 5


def publish_at_rate(settings: KafkaSettings, done: threading.Event) -> None:
    producer = make_producer(settings)
    topic = settings.topic(SMS_STATUS)
    began = time.monotonic()
    try:
        for i in range(RATE * SECONDS):
            event = SmsStatusEvent(
                idempotency_key=f"load-{i // 3}",
                account_id="acme",
                contact_id=str(i // 3),
                workflow_id="load-flow",
                status=(SmsStatus.QUEUED, SmsStatus.SENT, SmsStatus.DELIVERED)[i % 3],
                to_masked="+35840*****67",
            )
            producer.send(topic, key=event.key.encode(), value=encode(event))
            ahead = i / RATE - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush(timeout=30)
    finally:
        producer.close()
        done.set()


def test_keeps_up_and_answers_at_1000_events_a_second(kafka_settings: KafkaSettings) -> None:
    with running_dashboard(kafka_settings) as base:
        done = threading.Event()
        publisher = threading.Thread(target=publish_at_rate, args=(kafka_settings, done))
        publisher.start()
        slowest = 0.0
        while not done.is_set():
            began = time.monotonic()
            get_json(f"{base}/api/state")
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.1)
        publisher.join()
        deadline = time.monotonic() + 10
        while get_json(f"{base}/api/state")["events"] < RATE * SECONDS:
            assert time.monotonic() < deadline, "the dashboard fell behind"
            time.sleep(0.2)
        behind_s = 10 - (deadline - time.monotonic())
        state = get_json(f"{base}/api/state")
        (row,) = state["rows"]
        total = RATE * SECONDS  # each SMS goes queued -> sent -> delivered
        assert row["delivered"] == total // 3
        assert (row["queued"], row["sent"]) == (int(total % 3 == 1), int(total % 3 == 2))
        assert slowest < 1.0, f"the page took {slowest:.2f}s to answer under load"
        print(
            f"slowest answer under load {slowest * 1000:.0f} ms; "
            f"caught up {behind_s:.1f}s after the last event"
        )
