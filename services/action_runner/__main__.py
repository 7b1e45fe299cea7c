"""``smsflow action-runner`` / ``python -m services.action_runner``: run the action runner."""

from __future__ import annotations

import argparse
import sys

from kafka import KafkaConsumer

from schemas.topics import ACTIONS, CONTACT_CHANGES, SMS_INBOUND
from services.action_runner.settings import RunnerSettings
from services.common.definitions_feed import DefinitionsFeed
from services.common.faust_topics import declare_app_topics
from services.common.kafka import create_topics
from services.common.logging import configure_logging, get_logger

log = get_logger(__name__)


def partition_count(settings: RunnerSettings) -> int:
    """The contact partition count as the broker has it; the co-partitioned topics the
    runner reads must agree, since its tables are partitioned the same way."""
    consumer = KafkaConsumer(**settings.client_config())
    try:
        counts = {
            spec.name: len(consumer.partitions_for_topic(settings.topic(spec)) or ())
            for spec in (ACTIONS, CONTACT_CHANGES, SMS_INBOUND)
        }
    finally:
        consumer.close()
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise SystemExit(f"action-runner: topics are not co-partitioned: {counts}")
    return counts[ACTIONS.name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smsflow action-runner",
        description="Consent ledger, marketing status, SMS send gates and inbound keywords. "
        "Configured by SMSFLOW_* environment variables.",
    )
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = RunnerSettings.from_env()
    assert isinstance(settings, RunnerSettings)
    configure_logging("action-runner", level=settings.log_level)
    create_topics(settings)  # idempotent: a fresh broker works out of the box
    partitions = partition_count(settings)
    feed = DefinitionsFeed(settings).start(wait_s=60)

    import faust  # imported late: it is slow to import and not needed for --help

    from services.action_runner.app import ActionRunner

    runner = ActionRunner(settings, partitions, feed.catalog)
    declare_app_topics(runner.app, settings)
    worker = faust.Worker(runner.app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its terminal escapes would garble the JSON log lines
    log.info("service_starting", partitions=partitions, port=settings.action_runner_port)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        feed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
