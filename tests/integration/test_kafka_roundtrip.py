"""Every schema through the real broker, and topic administration."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from schemas.envelope import Event
from schemas.registry import EVENT_MODELS
from schemas.topics import (
    ALL_TOPICS,
    DEFINITIONS,
    SMS_LEDGER,
    SMS_REQUESTS,
    SUBSCRIPTION_CHANGES,
    by_name,
)
from services.common.codec import decode
from services.common.settings import KafkaSettings
from services.common.topic_layout import TopicLayoutError
from services.control.broker_cli import topics_main
from services.control.kafka import check_partitioning, create_topics, ensure_topics, make_admin
from tests.samples import samples
from tests.support import produce, read_all

pytestmark = pytest.mark.integration


def _topic_of(event_type: str) -> str:
    model = EVENT_MODELS[event_type]
    return next(spec.name for spec in ALL_TOPICS if model in spec.values)


def test_every_event_round_trips_through_its_topic(kafka_settings: KafkaSettings) -> None:
    events = samples()
    for event in events:
        produce(kafka_settings, by_name(_topic_of(event.event_type)), [event])
    received = []
    for spec in ALL_TOPICS:
        for key, value in read_all(kafka_settings, spec):
            event_type = decode(Event, value).event_type
            event = decode(EVENT_MODELS[event_type], value)
            assert key == event.key  # type: ignore[attr-defined]
            received.append(event)
    assert sorted(received, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


def test_topics_are_created_once_with_their_policies(kafka_settings: KafkaSettings) -> None:
    assert create_topics(kafka_settings) == []  # already there: nothing new
    admin = make_admin(kafka_settings)
    try:
        described = admin.describe_topics([kafka_settings.topic(s) for s in ALL_TOPICS])
        partitions = {t["name"]: len(t["partitions"]) for t in described}
        assert partitions[kafka_settings.topic(DEFINITIONS)] == 1
        assert partitions[kafka_settings.topic(SUBSCRIPTION_CHANGES)] == kafka_settings.partitions
        configs = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, kafka_settings.topic(DEFINITIONS)),
                ConfigResource(
                    ConfigResourceType.TOPIC, kafka_settings.topic(SUBSCRIPTION_CHANGES)
                ),
            ]
        )
    finally:
        admin.close()
    by_topic = configs["topic"]
    assert by_topic[kafka_settings.topic(DEFINITIONS)]["cleanup.policy"]["value"] == "compact"
    assert by_topic[kafka_settings.topic(SUBSCRIPTION_CHANGES)]["retention.ms"]["value"] == "-1"


def test_topics_create_refuses_a_ledger_partitioned_unlike_the_requests(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}."
    )
    # Someone created the ledger by hand, with fewer partitions than the requests get.
    ensure_topics(settings, [NewTopic(settings.topic(SMS_LEDGER), 2, 1)])
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("SMSFLOW_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("SMSFLOW_PARTITIONS", "3")
    assert topics_main(["create"]) == 1
    error = capsys.readouterr().err
    assert f"{settings.topic(SMS_LEDGER)} has 2" in error
    assert f"{settings.topic(SMS_REQUESTS)} has 3" in error
    assert "fix:" in error
    with pytest.raises(TopicLayoutError):
        check_partitioning(settings)


def test_topics_create_accepts_co_partitioned_topics(kafka_settings: KafkaSettings) -> None:
    counts = check_partitioning(kafka_settings)
    assert set(counts.values()) == {3}
