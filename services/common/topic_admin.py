"""Topic administration on aiokafka, for the services' start-up: create the topics that are
missing, wait until the broker's metadata shows them, read their partition counts.

The services run aiokafka clients only; the control commands and the tests administer topics
with kafka-python (``services.control.kafka``). Both build their topics from ``topic_layout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from schemas.topics import ALL_TOPICS, TopicSpec
from services.common.aio_kafka import aiokafka_options
from services.common.settings import KafkaSettings
from services.common.topic_layout import (
    CO_PARTITIONED,
    TopicDef,
    TopicLayoutError,
    contract_topics,
    require_same_partitions,
)

POLL_S = 0.2


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    settings: KafkaSettings, topics: Iterable[TopicDef], timeout_s: float = 60.0
) -> list[str]:
    """Create the topics that are missing and wait until the broker's metadata shows them;
    returns the names created. Idempotent, and safe alongside a concurrent creator.

    Clients that subscribe to a topic before it is visible ignore it or fail to route to it,
    so services create their topics at start-up rather than on first use.
    """
    wanted = {topic.name: topic for topic in topics}
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        created = await _create(admin, [t for name, t in wanted.items() if name not in existing])
        shown = await _partition_counts(admin, list(wanted), timeout_s)
    if len(shown) < len(wanted):
        raise TimeoutError(
            f"topics not visible after {timeout_s}s: {sorted(set(wanted) - set(shown))}"
        )
    return created


async def create_contract_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec] = ALL_TOPICS, timeout_s: float = 30.0
) -> list[str]:
    """Create every contract topic that is missing; returns the names created. Idempotent."""
    return await ensure_topics(settings, contract_topics(settings, specs), timeout_s)


async def partition_counts(
    settings: KafkaSettings, names: Iterable[str], timeout_s: float = 30.0
) -> dict[str, int]:
    """The partition count of each topic, once the broker's metadata shows them all; raises
    ``TopicLayoutError`` naming the topics still missing after ``timeout_s``."""
    names = list(dict.fromkeys(names))
    async with admin_client(settings) as admin:
        counts = await _partition_counts(admin, names, timeout_s)
    missing = [name for name in names if name not in counts]
    if missing:
        raise TopicLayoutError(
            f"no topic {', '.join(missing)} after {timeout_s}s. "
            "fix: create the topics (smsflow topics create) before the service starts"
        )
    return counts


async def check_partitioning(settings: KafkaSettings, timeout_s: float = 30.0) -> dict[str, int]:
    """The partition count of each topic of ``CO_PARTITIONED``; raises ``TopicLayoutError``
    when one is missing or their counts differ."""
    names = [settings.topic(spec) for spec in CO_PARTITIONED]
    counts = await partition_counts(settings, names, timeout_s)
    require_same_partitions(counts)
    return counts


async def _create(admin: AIOKafkaAdminClient, topics: list[TopicDef]) -> list[str]:
    if not topics:
        return []
    response = await admin.create_topics(
        [
            NewTopic(t.name, t.num_partitions, t.replication_factor, topic_configs=t.topic_configs)
            for t in topics
        ]
    )
    created: list[str] = []
    # One (name, error code[, message]) per topic; the request as a whole does not fail.
    for name, code, *message in response.topic_errors:
        if code == TopicAlreadyExistsError.errno:
            continue  # a concurrent creator won: the goal is reached all the same
        if code:
            raise for_code(code)(f"creating {name}: {' '.join(filter(None, message))}")
        created.append(name)
    return created


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float
) -> dict[str, int]:
    """The partition counts of ``names`` once the metadata shows them all, or of those it
    shows when ``timeout_s`` is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        # Every topic's metadata: naming topics in the request would create them on a broker
        # that creates topics on first use, with its default partition count.
        shown = {
            topic["topic"]: len(topic["partitions"])
            for topic in await admin.describe_topics()
            if topic["error_code"] == 0 and topic["partitions"]
        }
        counts = {name: shown[name] for name in names if name in shown}
        if len(counts) == len(names) or loop.time() >= deadline:
            return counts
        await asyncio.sleep(POLL_S)
