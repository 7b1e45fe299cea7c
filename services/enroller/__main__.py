"""``smsflow enroller`` / ``python -m services.enroller``: run the enroller in the foreground.

Configuration comes from ``SMSFLOW_*`` variables (see ``settings.py``): the broker, the
topic prefix, ``SMSFLOW_ENROLLER_PORT`` (health and metrics), ``SMSFLOW_DATA_DIR`` and
``SMSFLOW_ENROLLER_STORE`` (``memory://`` or ``rocksdb://``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import cast

from kafka.errors import KafkaError

from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES
from services.common.definitions_view import DefinitionsView
from services.common.faust_topics import declare_app_topics
from services.common.kafka import make_consumer
from services.common.logging import configure_logging, get_logger

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsflow enroller", description=__doc__)
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = cast(EnrollerSettings, EnrollerSettings.from_env())
    configure_logging("enroller", level=settings.log_level.upper())

    import faust  # imported late: it is slow to import and needs nothing above

    from .app import Enroller
    from .definitions import Definitions
    from .read_definitions import ReadDefinitions

    try:
        partitions = source_partitions(settings)
    except (StartupError, KafkaError, TimeoutError) as exc:
        print(f"smsflow enroller: {exc}", file=sys.stderr)
        return 1
    definitions = Definitions()
    view = DefinitionsView(settings, catalog=definitions.catalog, on_change=definitions.on_change)
    definitions.lock, definitions.loaded = view.lock, view.loaded
    (settings.data_dir / "enroller").mkdir(parents=True, exist_ok=True)  # faust makes one level
    enroller = Enroller(settings, definitions, partitions)
    # The first dependency: read to the end before the consumer and the agent start.
    enroller.app.add_dependency(ReadDefinitions(view, wait_s=DEFINITIONS_LOAD_TIMEOUT_S))
    try:
        declare_app_topics(enroller.app, settings)
    except (KafkaError, TimeoutError) as exc:
        print(f"smsflow enroller: {exc}", file=sys.stderr)
        return 1
    worker = faust.Worker(
        enroller.app,
        loglevel="WARN",
        redirect_stdouts=False,
        quiet=True,
    )
    # faust's terminal spinner puts the root logger at DEBUG (to spin on every record),
    # which makes every library's debug call build a log record: a large, silent cost.
    worker.spinner = None
    log.info("service_starting", app_id=settings.app_id, partitions=partitions)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
