"""Raw kafka-python produce and consume rates on the broker under test.

Every smsflow figure is printed beside these, measured in the same run on the same broker,
because the machine is shared and absolute numbers drift from run to run.
"""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

# A contact change of typical size, so the baseline moves comparable bytes.
PAYLOAD = (
    b'{"event_id":"0123456789abcdef0123456789abcdef","event_type":"contact.changed",'
    b'"schema_version":1,"occurred_at":"2026-11-27T10:00:00Z","account_id":"acme",'
    b'"contact_id":"100001","properties":{"firstname":"Aino","lifecyclestage":"customer",'
    b'"mobilephone":"+358401234567"},"deleted":false,"source":"upstream"}'
)


def measure(bootstrap: str, n: int = 50_000, partitions: int = 6) -> dict[str, float]:
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
        start = time.perf_counter()
        for i in range(n):
            producer.send(topic, key=f"acme:{i % 5000}".encode(), value=PAYLOAD)
        producer.flush()
        produce_s = time.perf_counter() - start
        producer.close()

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        seen = 0
        start = time.perf_counter()
        deadline = start + 120
        while seen < n and time.perf_counter() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                seen += len(records)
        consume_s = time.perf_counter() - start
        consumer.close()
    finally:
        admin.delete_topics([topic])
        admin.close()
    return {
        "raw_produce_per_s": n / produce_s,
        "raw_consume_per_s": seen / consume_s,
        # One record produced and consumed: what any pipeline stage costs at least.
        "raw_roundtrip_per_s": n / (produce_s + consume_s),
    }


if __name__ == "__main__":
    import os

    for name, value in measure(
        os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    ).items():
        print(f"{name} {value:,.0f}")
