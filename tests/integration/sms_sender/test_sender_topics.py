"""The sender checks the topic layout it relies on before it starts."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import NewTopic

from schemas.topics import SMS_LEDGER, SMS_REQUESTS
from services.common.settings import KafkaSettings
from services.control.kafka import create_topics, ensure_topics
from tests.integration.sms_sender.processes import WEBHOOK_SECRETS
from tests.processes import clean_env, run_once
from tests.support import drop_topics

pytestmark = pytest.mark.integration


def test_the_sender_refuses_to_start_on_a_ledger_partitioned_unlike_the_requests(
    kafka_bootstrap: str,
) -> None:
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}."
    )
    ensure_topics(settings, [NewTopic(settings.topic(SMS_LEDGER), 2, 1)])
    create_topics(settings, [SMS_REQUESTS])
    env = clean_env() | {
        **WEBHOOK_SECRETS,
        "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
    }
    try:
        done = run_once("services.sms_sender", env)
    finally:
        drop_topics(settings)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("sms-sender: refusing to start: ")
    assert f"{settings.topic(SMS_LEDGER)} has 2" in line
    assert "fix:" in line
