"""``make demo``: the broker, the topics, one contact change published and read back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kafka import KafkaConsumer

from schemas.contacts import ContactChange
from schemas.topics import CONTACT_CHANGES
from services.common.codec import decode
from services.common.kafka import create_topics, make_producer, send_model
from services.common.local_kafka import BrokerError, LocalBroker
from services.common.settings import KafkaSettings


def main() -> int:
    broker = LocalBroker(state_dir=Path(os.environ.get("SMSFLOW_STATE_DIR", ".smsflow")))
    print(f"starting Kafka on {broker.bootstrap} ...", flush=True)
    try:
        started = broker.start()
    except BrokerError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    try:
        settings = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap)
        created = create_topics(settings)
        print(f"topics ready ({len(created)} created)")
        change = ContactChange(
            account_id="acme",
            contact_id="1001",
            properties={"firstname": "Aino", "lifecyclestage": "customer"},
        )
        producer = make_producer(settings)
        send_model(producer, settings.topic(CONTACT_CHANGES), change).get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            settings.topic(CONTACT_CHANGES),
            **settings.client_config(),
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        seen = [decode(ContactChange, r.value) for r in consumer]
        consumer.close()
        assert any(c.event_id == change.event_id for c in seen), "contact change not read back"
        print(f"published and read back contact change {change.event_id} for {change.key}")
        return 0
    finally:
        if started:
            broker.stop()
            print("Kafka stopped")


if __name__ == "__main__":
    raise SystemExit(main())
