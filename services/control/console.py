"""What the people-facing commands share: argument parsing, quiet logs, broker reachability."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from services.common.logging import configure_logging
from services.common.settings import KafkaSettings
from services.control.local_kafka import broker_answers, port_open

OK, INVALID, USAGE, UNREACHABLE = 0, 1, 2, 3


class BrokerUnreachable(RuntimeError):
    """Kafka does not answer; commands exit with ``UNREACHABLE``."""


class Usage(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse without its ``sys.exit``: ``Usage.code`` is 0 for --help, 2 otherwise."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        raise Usage(OK if exc.code == 0 else USAGE) from None


def run_command(
    name: str,
    parser: argparse.ArgumentParser,
    argv: list[str],
    work: Callable[[argparse.Namespace, KafkaSettings], int],
) -> int:
    """Parse ``argv``, quiet the logs and run ``work`` with the settings from the environment.

    ``work`` returns the exit code; ``BrokerUnreachable`` from it prints
    ``smsflow NAME: why`` and exits with ``UNREACHABLE``.
    """
    try:
        args = parse_args(parser, argv)
    except Usage as exc:
        return exc.code
    quiet_logs(name)
    try:
        return work(args, KafkaSettings.from_env())
    except BrokerUnreachable as exc:
        print(f"smsflow {name}: {exc}", file=sys.stderr)
        return UNREACHABLE


def quiet_logs(command: str) -> None:
    """Commands print their own messages; library chatter (kafka-python retries) is noise."""
    configure_logging(command, level="WARNING")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def require_broker(settings: KafkaSettings, timeout_s: float = 10.0) -> None:
    servers = settings.kafka_bootstrap_servers
    hosts = [s.rsplit(":", 1) for s in servers.split(",") if ":" in s]
    listening = any(port_open(host, int(port)) for host, port in hosts if port.isdigit())
    if not listening or not broker_answers(servers, timeout_s=timeout_s):
        raise BrokerUnreachable(
            f"Kafka at {servers} does not answer "
            "(start the local stack with `smsflow dev up`, or set SMSFLOW_KAFKA_BOOTSTRAP_SERVERS)"
        )
