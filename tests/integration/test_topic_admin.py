"""Topic administration on aiokafka, as the services do it at start-up, on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from schemas.topics import ALL_TOPICS, DEFINITIONS, SMS_LEDGER, SMS_REQUESTS, SUBSCRIPTION_CHANGES
from services.common.settings import KafkaSettings
from services.common.topic_admin import (
    check_partitioning,
    create_contract_topics,
    ensure_topics,
    partition_counts,
)
from services.common.topic_layout import TopicDef, TopicLayoutError
from services.control.kafka import make_admin
from tests.support import drop_topics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[KafkaSettings]:
    """A topic prefix of this test's own and no topic yet, every topic deleted afterwards."""
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=3,
    )
    yield settings
    drop_topics(settings)


def compacted(settings: KafkaSettings, name: str, partitions: int = 2) -> TopicDef:
    return TopicDef(f"{settings.topic_prefix}{name}", partitions, 1, {"cleanup.policy": "compact"})


async def test_the_contract_topics_are_created_once_with_their_partitions_and_policies(
    settings: KafkaSettings,
) -> None:
    names = [settings.topic(spec) for spec in ALL_TOPICS]
    assert sorted(await create_contract_topics(settings)) == sorted(names)
    assert await create_contract_topics(settings) == []  # already there: nothing new
    counts = await partition_counts(settings, names)
    assert counts[settings.topic(DEFINITIONS)] == 1
    assert counts[settings.topic(SUBSCRIPTION_CHANGES)] == 3
    admin = make_admin(settings)
    try:
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic(SUBSCRIPTION_CHANGES))]
        )
    finally:
        admin.close()
    described = configs["topic"][settings.topic(SUBSCRIPTION_CHANGES)]
    assert described["retention.ms"]["value"] == "-1"


async def test_concurrent_creators_each_get_the_topics_and_create_each_once(
    settings: KafkaSettings,
) -> None:
    topics = [compacted(settings, "a-state"), compacted(settings, "b-state", 4)]
    first, second = await asyncio.gather(
        ensure_topics(settings, topics), ensure_topics(settings, topics)
    )
    assert sorted(first + second) == sorted(t.name for t in topics)
    assert await partition_counts(settings, [t.name for t in topics]) == {
        topics[0].name: 2,
        topics[1].name: 4,
    }
    admin = make_admin(settings)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics[1].name)])
    finally:
        admin.close()
    assert configs["topic"][topics[1].name]["cleanup.policy"]["value"] == "compact"


async def test_partition_counts_wait_for_a_topic_created_meanwhile(
    settings: KafkaSettings,
) -> None:
    late = compacted(settings, "late", 5)

    async def create_later() -> None:
        await asyncio.sleep(1.0)
        await ensure_topics(settings, [late])

    counts, _ = await asyncio.gather(
        partition_counts(settings, [late.name], timeout_s=30), create_later()
    )
    assert counts == {late.name: 5}


async def test_a_missing_topic_is_named_with_the_fix(settings: KafkaSettings) -> None:
    missing = f"{settings.topic_prefix}nowhere"
    with pytest.raises(TopicLayoutError, match=f"no topic {missing} .*fix: create the topics"):
        await partition_counts(settings, [missing], timeout_s=1)


async def test_the_ledger_must_be_partitioned_like_the_requests(settings: KafkaSettings) -> None:
    await create_contract_topics(settings, [SMS_REQUESTS, SMS_LEDGER])
    counts = await check_partitioning(settings)
    assert counts == {settings.topic(SMS_REQUESTS): 3, settings.topic(SMS_LEDGER): 3}


async def test_a_ledger_partitioned_unlike_the_requests_is_refused_with_the_fix(
    settings: KafkaSettings,
) -> None:
    # Someone created the ledger by hand, with fewer partitions than the requests get.
    await ensure_topics(settings, [TopicDef(settings.topic(SMS_LEDGER), 2, 1)])
    await create_contract_topics(settings, [SMS_REQUESTS, SMS_LEDGER])
    with pytest.raises(TopicLayoutError) as refused:
        await check_partitioning(settings)
    message = str(refused.value)
    assert f"{settings.topic(SMS_REQUESTS)} has 3" in message
    assert f"{settings.topic(SMS_LEDGER)} has 2" in message
    assert "fix: add partitions to the smaller one" in message
