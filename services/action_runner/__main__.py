"""``smsflow action-runner`` / ``python -m services.action_runner``: run the action runner."""

from __future__ import annotations

import argparse
import asyncio
import sys

from schemas.topics import ACTIONS, CONTACT_CHANGES, SMS_INBOUND
from services.action_runner.settings import RunnerSettings
from services.common.definitions_view import DefinitionsView
from services.common.logging import configure_logging, get_logger
from services.common.serving import run_until_signalled
from services.common.topic_admin import create_contract_topics, ensure_topics, partition_counts

log = get_logger(__name__)

DEFINITIONS_LOAD_TIMEOUT_S = 60.0


async def prepare_topics(settings: RunnerSettings) -> int:
    """Creates the contract topics and the runner's own, those that are missing (a fresh
    broker works out of the box); returns the contact partition count."""
    await create_contract_topics(settings)
    partitions = await partition_count(settings)
    from services.action_runner.app import own_topics

    await ensure_topics(settings, own_topics(settings, partitions))
    return partitions


async def partition_count(settings: RunnerSettings) -> int:
    """The contact partition count as the broker has it; the co-partitioned topics the
    runner reads must agree, since its tables are partitioned the same way."""
    inputs = (ACTIONS, CONTACT_CHANGES, SMS_INBOUND)
    by_name = await partition_counts(settings, [settings.topic(spec) for spec in inputs])
    counts = {spec.name: by_name[settings.topic(spec)] for spec in inputs}
    if len(set(counts.values())) != 1:
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
    problem = settings.secret_problem()
    if problem is not None:
        # Anyone who knows the secret and an SMS's ids could work out its tracked links.
        print(f"action-runner: refusing to start: {problem}", file=sys.stderr)
        return 2
    configure_logging("action-runner", level=settings.log_level)
    asyncio.run(serve(settings))
    return 0


async def serve(settings: RunnerSettings) -> None:
    """Prepares the topics, reads the definitions to the end, then runs until SIGTERM or
    SIGINT, then stops cleanly (in-flight batches finish, offsets are committed)."""
    partitions = await prepare_topics(settings)
    log.info("service_starting", partitions=partitions, port=settings.action_runner_port)
    definitions = await DefinitionsView(settings).start(wait_s=DEFINITIONS_LOAD_TIMEOUT_S)
    try:
        await run_pipeline(settings, partitions, definitions)
    finally:
        await definitions.stop()


async def run_pipeline(
    settings: RunnerSettings, partitions: int, definitions: DefinitionsView
) -> None:
    from services.action_runner.app import ActionRunner

    await run_until_signalled(ActionRunner(settings, partitions, definitions.catalog))


if __name__ == "__main__":
    raise SystemExit(main())
