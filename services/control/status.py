"""``smsflow status [--follow] [--json]``: the latest status of each SMS, from ``sms-status``.

Reads the topic from the beginning without a consumer group (it commits nothing).
A table for people; ``--json`` prints every event as one JSON line for scripts.
Exit codes: 0 ok, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schemas.sms import SmsStatusEvent
from schemas.topics import SMS_STATUS
from services.common.codec import DecodeError, decode
from services.common.settings import KafkaSettings
from services.control.console import OK, BrokerUnreachable, require_broker, run_command
from services.control.status_table import LatestStatuses, header, render, render_row


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow status",
        description="Show the status of each SMS (the sms-status topic).",
        epilog="exit codes: 0 ok, 2 usage, 3 broker unreachable",
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new statuses")
    parser.add_argument("--json", action="store_true", help="every event as a JSON line")
    parser.add_argument("--account", help="only this account")
    parser.add_argument("--contact", help="only this contact id")
    return parser


def read_statuses(
    settings: KafkaSettings,
    follow: bool = False,
    stop: Callable[[], bool] = lambda: False,
    skipped: Callable[[str], None] = lambda _: None,
) -> Iterator[SmsStatusEvent | None]:
    """Every status event in topic order; ``None`` marks "read to the end" once."""
    topic = settings.topic(SMS_STATUS)
    try:
        consumer = KafkaConsumer(
            **settings.client_config(), enable_auto_commit=False, isolation_level="read_committed"
        )
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"cannot connect to {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        caught_up = False
        while not stop():
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    try:
                        yield decode(SmsStatusEvent, record.value)
                    except DecodeError as exc:
                        skipped(f"{tp.topic}[{tp.partition}]@{record.offset}: {exc.reason}")
            if not caught_up and all(consumer.position(tp) >= end[tp] for tp in partitions):
                caught_up = True
                yield None
                if not follow:
                    return
    finally:
        consumer.close()


def show(
    settings: KafkaSettings,
    *,
    follow: bool = False,
    as_json: bool = False,
    account: str | None = None,
    contact: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    statuses = LatestStatuses()
    printed_header = False

    def wanted(event: SmsStatusEvent) -> bool:
        return (account is None or event.account_id == account) and (
            contact is None or event.contact_id == contact
        )

    def skip(where: str) -> None:
        print(f"skipped an undecodable record at {where}", file=err)

    for event in read_statuses(settings, follow, stop=stop, skipped=skip):
        if event is None:  # caught up with what was there when we started
            if not as_json:
                print(render(statuses.rows()), file=out, flush=True)
                if follow:
                    print(f"\n{header()}", file=out, flush=True)
                printed_header = True
            continue
        if not wanted(event):
            continue
        if as_json:
            print(event.model_dump_json(), file=out, flush=True)
            continue
        merged = statuses.add(event)
        if printed_header:  # following: one line per change
            print(render_row(merged), file=out, flush=True)


def main(argv: list[str]) -> int:
    return run_command("status", build_parser(), argv, _show)


def _show(args: argparse.Namespace, settings: KafkaSettings) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        require_broker(settings)
        if args.follow and not args.json:
            print("following sms-status; Ctrl-C stops", file=sys.stderr)
        show(
            settings,
            follow=args.follow,
            as_json=args.json,
            account=args.account,
            contact=args.contact,
        )
    return OK
