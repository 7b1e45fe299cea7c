"""What the topics must look like, whichever Kafka client creates or checks them: the topics
to create from the contract, and the partitioning the services rely on.

The services administer topics with aiokafka (``topic_admin``), the control commands and
the tests with kafka-python (``kafka``); both build their requests from these values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.topics import ALL_TOPICS, SMS_LEDGER, SMS_REQUESTS, TopicSpec
from services.common.settings import KafkaSettings


@dataclass(frozen=True)
class TopicDef:
    """A topic to create, with the fields both clients' ``NewTopic`` take."""

    name: str
    num_partitions: int
    replication_factor: int
    topic_configs: dict[str, str] = field(default_factory=dict)


def compacted(name: str, partitions: int, replication: int) -> TopicDef:
    """A store's changelog: compacted, partitioned like the inputs it is the state of."""
    return TopicDef(name, partitions, replication, {"cleanup.policy": "compact"})


def contract_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec] = ALL_TOPICS
) -> list[TopicDef]:
    return [
        TopicDef(
            name=settings.topic(spec),
            num_partitions=spec.partition_count(settings.partitions),
            replication_factor=settings.replication_factor,
            topic_configs=spec.config(),
        )
        for spec in specs
    ]


class TopicLayoutError(RuntimeError):
    """Existing topics whose partitioning breaks an assumption; the message says the fix."""


# Topics that must have the same partition count: the SMS sender owns a request's ledger
# entry on the partition number of the request's own.
CO_PARTITIONED = (SMS_REQUESTS, SMS_LEDGER)


def require_same_partitions(counts: Mapping[str, int]) -> None:
    """Raises ``TopicLayoutError`` when the topics of ``counts`` (name: partition count)
    do not all have the same number of partitions."""
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise TopicLayoutError(
            f"{listed} partitions; they must have the same number. "
            "fix: add partitions to the smaller one (kafka-topics.sh --alter --partitions N) "
            "before the SMS sender starts"
        )
