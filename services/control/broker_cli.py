"""``smsflow kafka start|stop|status`` and ``smsflow topics create``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from services.control.local_kafka import BrokerError, LocalBroker, broker_answers


def state_dir() -> Path:
    return Path(os.environ.get("SMSFLOW_STATE_DIR", ".smsflow"))


def kafka_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="smsflow kafka", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMSFLOW_KAFKA_PORT", 9092)))
    parser.add_argument("--state-dir", type=Path, default=state_dir())
    parser.add_argument("--purge", action="store_true", help="with stop: delete the data too")
    args = parser.parse_args(argv)
    broker = LocalBroker(state_dir=args.state_dir, port=args.port)
    try:
        if args.action == "start":
            started = broker.start()
            print(f"kafka {'started' if started else 'already running'} on {broker.bootstrap}")
        elif args.action == "stop":
            stopped = broker.stop()
            if args.purge:
                broker.purge()
            print("kafka stopped" if stopped else "kafka was not running")
        else:
            pid = broker.pid()
            ready = pid is not None and broker_answers(broker.bootstrap)
            print(
                f"kafka {'running' if ready else 'stopped'}"
                + (f" (pid {pid}) on {broker.bootstrap}" if pid else "")
            )
            return 0 if ready else 3
    except BrokerError as exc:
        print(f"smsflow kafka: {exc}", file=sys.stderr)
        return 1
    return 0


def topics_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="smsflow topics")
    parser.add_argument("action", choices=["create"])
    parser.parse_args(argv)
    from kafka.errors import KafkaError

    from services.common.settings import KafkaSettings
    from services.common.topic_layout import TopicLayoutError
    from services.control.kafka import check_partitioning, create_topics

    settings = KafkaSettings.from_env()
    try:
        created = create_topics(settings)
        check_partitioning(settings)
    except TopicLayoutError as exc:
        print(f"smsflow topics: {exc}", file=sys.stderr)
        return 1
    except (KafkaError, TimeoutError) as exc:
        print(
            f"smsflow topics: broker {settings.kafka_bootstrap_servers} unreachable: {exc}",
            file=sys.stderr,
        )
        return 1
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} created, all topics present")
    return 0
