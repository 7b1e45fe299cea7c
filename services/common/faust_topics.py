"""Creates a faust app's changelog and internal topics before its worker starts.

faust declares them itself during start-up, but its consumer may subscribe and its producer
route before the broker's metadata shows them ("Ignoring missing topic"; aiokafka's
partitioner failing on an unknown topic). Creating them up front removes the race.
"""

from __future__ import annotations

from typing import Any

from kafka.admin import NewTopic

from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings


def app_topics(app: Any) -> list[NewTopic]:
    """Every changelog topic of the app's tables and every internal topic its agents read."""
    default_partitions = int(app.conf.topic_partitions)
    channels = [table.changelog_topic for table in app.tables.values()]
    channels += [agent.channel for agent in app.agents.values()]
    topics: dict[str, NewTopic] = {}
    for channel in channels:
        if not getattr(channel, "internal", False):
            continue  # contract topics are created by `smsflow topics create`
        config = {"cleanup.policy": "compact" if channel.compacting else "delete"}
        if channel.retention:
            config["retention.ms"] = str(int(float(channel.retention) * 1000))
        name = channel.get_topic_name()
        topics[name] = NewTopic(
            name=name,
            num_partitions=channel.partitions or default_partitions,
            replication_factor=int(app.conf.topic_replication_factor),
            topic_configs=config,
        )
    return list(topics.values())


def declare_app_topics(app: Any, settings: KafkaSettings) -> list[str]:
    return ensure_topics(settings, app_topics(app))
