"""``smsflow enroller`` / ``python -m services.enroller``: run the enroller in the foreground.

Configuration comes from ``SMSFLOW_*`` variables (see ``settings.py``): the broker, the
topic prefix, ``SMSFLOW_ENROLLER_PORT`` (health and metrics), ``SMSFLOW_DATA_DIR`` and
``SMSFLOW_ENROLLER_STORE`` (``memory://`` or ``rocksdb://``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import cast

from kafka.admin import NewTopic
from kafka.errors import KafkaError

from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES
from services.common.definitions_view import DefinitionsView
from services.common.kafka import ensure_topics, make_consumer
from services.common.logging import configure_logging, get_logger
from services.common.serving import run_until_signalled

from .settings import EnrollerSettings

log = get_logger("services.enroller")

DEFINITIONS_LOAD_TIMEOUT_S = 60.0


class StartupError(RuntimeError):
    pass


def source_partitions(settings: EnrollerSettings, timeout_s: float = 30.0) -> int:
    """The partition count shared by the source topics (the tables must match it)."""
    consumer = make_consumer(settings, group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            counts = {
                spec.name: len(consumer.partitions_for_topic(settings.topic(spec)) or ())
                for spec in (CONTACT_CHANGES, ACTION_RESULTS)
            }
            if all(counts.values()):
                break
            if time.monotonic() > deadline:
                missing = ", ".join(settings.topic_prefix + n for n, c in counts.items() if not c)
                raise StartupError(f"topics missing: {missing}; run `smsflow topics create`")
            time.sleep(0.5)
    finally:
        consumer.close()
    if len(set(counts.values())) != 1:
        raise StartupError(f"source topics are not co-partitioned: {counts}")
    return next(iter(counts.values()))


def own_topics(settings: EnrollerSettings, partitions: int) -> list[NewTopic]:
    """The stores' compacted changelogs, partitioned like the source topics."""
    from .app import changelog
    from .contacts import STORES

    return [
        NewTopic(
            changelog(settings, store),
            partitions,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        for store in STORES
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsflow enroller", description=__doc__)
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = cast(EnrollerSettings, EnrollerSettings.from_env())
    configure_logging("enroller", level=settings.log_level.upper())
    try:
        partitions = source_partitions(settings)
        ensure_topics(settings, own_topics(settings, partitions))
    except (StartupError, KafkaError, TimeoutError) as exc:
        print(f"smsflow enroller: {exc}", file=sys.stderr)
        return 1
    log.info("service_starting", app_id=settings.app_id, partitions=partitions)
    asyncio.run(serve(settings, partitions))
    return 0


async def serve(settings: EnrollerSettings, partitions: int) -> None:
    """Reads the definitions to the end, then runs until SIGTERM or SIGINT."""
    from .app import Enroller
    from .definitions import Definitions

    definitions = Definitions()
    view = DefinitionsView(settings, catalog=definitions.catalog, on_change=definitions.on_change)
    definitions.lock, definitions.loaded = view.lock, view.loaded
    await view.start(wait_s=DEFINITIONS_LOAD_TIMEOUT_S)
    try:
        await run_until_signalled(Enroller(settings, definitions, partitions))
    finally:
        await view.stop()


if __name__ == "__main__":
    raise SystemExit(main())
