"""``smsflow apply -f PATH``: validate every document, then publish all of them or none.

Exit codes: 0 applied (or nothing to change), 1 invalid input, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from pathlib import Path
from typing import TextIO

from kafka.errors import KafkaError

from schemas.topics import DEFINITIONS
from services.common.catalog import Catalog
from services.common.settings import KafkaSettings
from services.control.console import (
    INVALID,
    OK,
    UNREACHABLE,
    BrokerUnreachable,
    require_broker,
    run_command,
)
from services.control.definitions_feed import DefinitionsFeed
from services.control.kafka import create_topics, make_producer, send_model
from services.control.plan import Change, Outcome, plan
from services.control.problems import Problem
from services.control.references import check_batch
from services.control.sources import SourceError, load_path
from services.control.validation import parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow apply",
        description="Validate and publish Account, SmsMessage and Workflow documents.",
        epilog="exit codes: 0 applied, 1 invalid input, 2 usage, 3 broker unreachable",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        type=Path,
        action="append",
        required=True,
        help="a YAML/JSON file or a folder of them (repeatable)",
    )
    parser.add_argument("-R", "--recursive", action="store_true", help="also read sub-folders")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show what would change; publish nothing",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka")
    return parser


def main(argv: list[str]) -> int:
    return run_command(
        "apply",
        build_parser(),
        argv,
        lambda args, settings: apply_paths(
            settings,
            args.paths,
            recursive=args.recursive,
            dry_run=args.dry_run,
            timeout_s=args.timeout,
        ),
    )


def apply_paths(
    settings: KafkaSettings,
    paths: list[Path],
    *,
    recursive: bool = False,
    dry_run: bool = False,
    timeout_s: float = 30.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    try:
        sources = [doc for path in paths for doc in load_path(path, recursive)]
    except SourceError as exc:
        print(f"error: {exc}", file=err)
        return INVALID
    parsed, problems = parse(sources)
    if problems:  # shape errors need no broker
        return _report(problems, err)
    try:
        published = read_catalog(settings, timeout_s)
        problems = check_batch(parsed, published)
        if problems:
            return _report(problems, err)
        changes = plan((item.document for item in parsed), published)
        if not dry_run:
            publish(settings, [c for c in changes if c.outcome is not Outcome.UNCHANGED], timeout_s)
    except BrokerUnreachable as exc:
        print(f"smsflow apply: {exc}", file=err)
        return UNREACHABLE
    suffix = " (dry run)" if dry_run else ""
    for change in changes:
        print(f"{change}{suffix}", file=out)
    return OK


def _report(problems: list[Problem], err: TextIO) -> int:
    for found in problems:
        print(f"error: {found}", file=err)
    print(f"{len(problems)} problem(s); nothing was published", file=err)
    return INVALID


def read_catalog(settings: KafkaSettings, timeout_s: float) -> Catalog:
    """The definitions published so far (the compacted topic read to its end)."""
    require_broker(settings, timeout_s=min(timeout_s, 10.0))
    try:
        create_topics(settings, [DEFINITIONS], timeout_s=timeout_s)
        feed = DefinitionsFeed(settings).start(wait_s=timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise BrokerUnreachable(f"cannot read {settings.topic(DEFINITIONS)}: {exc}") from exc
    feed.stop()
    return feed.catalog


def publish(settings: KafkaSettings, changes: list[Change], timeout_s: float) -> None:
    """One transaction: readers see every document of the batch or none of them."""
    if not changes:
        return
    topic = settings.topic(DEFINITIONS)
    try:
        producer = make_producer(settings, transactional_id=f"smsflow-apply-{uuid.uuid4().hex}")
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"cannot connect to {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    try:
        producer.init_transactions()
        producer.begin_transaction()
        futures = [send_model(producer, topic, change.event()) for change in changes]
        producer.commit_transaction()
        for future in futures:
            future.get(timeout=timeout_s)
    except KafkaError as exc:
        # If this fails too, the broker aborts the abandoned transaction after its timeout.
        with contextlib.suppress(KafkaError):
            producer.abort_transaction()
        raise BrokerUnreachable(
            f"publishing to {topic} failed, nothing was applied: {exc}"
        ) from exc
    finally:
        producer.close(timeout=timeout_s)
