"""``smsflow enroller`` / ``python -m services.enroller``: run the enroller in the foreground.

Configuration comes from ``SMSFLOW_*`` variables (see ``settings.py``): the broker, the
topic prefix, ``SMSFLOW_ENROLLER_PORT`` (health and metrics), ``SMSFLOW_DATA_DIR`` and
``SMSFLOW_ENROLLER_STORE`` (``memory://`` or ``rocksdb://``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import cast

from aiokafka.errors import KafkaError

from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES
from services.common.definitions_view import DefinitionsView
from services.common.logging import configure_logging, get_logger
from services.common.serving import run_until_signalled
from services.common.topic_admin import ensure_topics, partition_counts
from services.common.topic_layout import TopicDef, TopicLayoutError, compacted

from .settings import EnrollerSettings

log = get_logger("services.enroller")

DEFINITIONS_LOAD_TIMEOUT_S = 60.0


async def prepare_topics(settings: EnrollerSettings) -> int:
    """The partition count the source topics share (the stores are partitioned alike); the
    stores' changelogs are created when missing."""
    names = [settings.topic(spec) for spec in (CONTACT_CHANGES, ACTION_RESULTS)]
    counts = await partition_counts(settings, names)
    if len(set(counts.values())) != 1:
        raise TopicLayoutError(f"source topics are not co-partitioned: {counts}")
    partitions = counts[names[0]]
    await ensure_topics(settings, own_topics(settings, partitions))
    return partitions


def own_topics(settings: EnrollerSettings, partitions: int) -> list[TopicDef]:
    """The stores' compacted changelogs, partitioned like the source topics."""
    from .app import changelog
    from .contacts import STORES

    replication = settings.replication_factor
    return [compacted(changelog(settings, store), partitions, replication) for store in STORES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsflow enroller", description=__doc__)
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = cast(EnrollerSettings, EnrollerSettings.from_env())
    configure_logging("enroller", level=settings.log_level.upper())
    try:
        asyncio.run(serve(settings))
    except (TopicLayoutError, KafkaError, TimeoutError) as exc:
        print(f"smsflow enroller: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(settings: EnrollerSettings) -> None:
    """Checks the topics, reads the definitions to the end, then runs until SIGTERM or
    SIGINT (in-flight batches finish, offsets are committed)."""
    from .app import Enroller
    from .definitions import Definitions

    partitions = await prepare_topics(settings)
    log.info("service_starting", app_id=settings.app_id, partitions=partitions)
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
