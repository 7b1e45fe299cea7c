"""``smsflow dead-letters list | replay``: what the services could not handle, and a way back.

``replay`` re-publishes each dead letter's original record to its source topic, with the
same key and the header ``smsflow-replayed-from: dead-letters:<partition>@<offset>``.

Each dead letter is replayed once however often the command runs, with no state of its own:
before publishing, it reads the source topics (from the time of the oldest dead letter on)
for records that already carry the header. Kafka is then the one record of what was
replayed, shared by every operator and machine, and it survives a lost laptop; a marker
file or a local database would not. A record that fails again after a replay comes back
with that header (the services keep it, and the failed record itself carries it), so it is
listed as a repeat and not replayed again: no loops. Truncated originals are listed only.

Exit codes: 0 ok, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from schemas.dead_letters import DeadLetter
from schemas.topics import DEAD_LETTERS
from services.common.codec import DecodeError, decode
from services.common.dead_letters import REPLAYED_FROM_HEADER, header_value
from services.common.masking import mask_phones_in
from services.common.settings import KafkaSettings
from services.control.console import OK, USAGE, require_broker, run_command
from services.control.kafka import make_admin, make_producer
from services.control.topic_reader import Record, read_topics

REPLAYABLE = "replayable"
REPLAYED = "replayed"
_SPAN = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``1h``, ``2d`` (before ``now``) or an RFC 3339 time."""
    span = _SPAN.match(text.strip().lower())
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30m, 1h, 2d or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"--since {text!r}: an RFC 3339 time needs its offset (e.g. Z)")
    return moment


@dataclass(frozen=True)
class Letter:
    """One record of ``dead-letters``: where it sits and what it says."""

    record: Record
    letter: DeadLetter

    @property
    def marker(self) -> str:
        return f"{DEAD_LETTERS.name}:{self.record.partition}@{self.record.offset}"

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.letter.topic, self.letter.partition, self.letter.offset)

    def original(self) -> bytes:
        value = self.letter.value or ""
        if self.letter.value_encoding == "base64":
            return base64.b64decode(value)
        return value.encode("utf-8")


@dataclass(frozen=True)
class Replays:
    """What the source topics say about earlier replays."""

    markers: frozenset[str]  # dead letters already replayed
    # source record -> the dead letter it replayed: a dead letter of such a record is a repeat
    replayed_records: dict[tuple[str, int, int], str]


def state_of(item: Letter, replays: Replays, topics: set[str]) -> str:
    """``replayable``, ``replayed``, or why it is not replayed."""
    letter = item.letter
    repeat_of = letter.replayed_from or replays.replayed_records.get(item.source)
    if item.marker in replays.markers:
        return REPLAYED
    if repeat_of:
        return f"repeat of {repeat_of} (failed again after a replay)"
    if letter.value_truncated:
        return "truncated original: not replayable"
    if letter.value is None:
        return "no original value"
    if letter.topic not in topics:
        return f"{letter.topic} is not a topic: not replayable"
    return REPLAYABLE


def select(letters: Iterable[Letter], service: str | None, since: datetime | None) -> list[Letter]:
    return [
        item
        for item in letters
        if (service is None or item.letter.service == service)
        and (since is None or item.letter.occurred_at >= since)
    ]


# ---------------------------------------------------------------------- Kafka edges


def read_letters(settings: KafkaSettings, err: TextIO = sys.stderr) -> list[Letter]:
    letters = []
    for record in read_topics(settings, [settings.topic(DEAD_LETTERS)]):
        try:
            letters.append(Letter(record, decode(DeadLetter, record.value)))
        except DecodeError as exc:
            print(f"skipped an undecodable record at {record.where}: {exc.reason}", file=err)
    letters.sort(key=lambda item: (item.record.timestamp_ms, item.record.partition))
    return letters


def read_replays(settings: KafkaSettings, letters: list[Letter], topics: set[str]) -> Replays:
    sources = sorted({item.letter.topic for item in letters} & topics)
    if not letters or not sources:
        return Replays(frozenset(), {})
    # A replay is published after its dead letter: start at the oldest dead letter.
    start_ms = min(item.record.timestamp_ms for item in letters)
    markers: set[str] = set()
    replayed: dict[tuple[str, int, int], str] = {}
    for record in read_topics(settings, sources, start_ms=start_ms):
        marker = header_value(record.headers, REPLAYED_FROM_HEADER)
        if marker is not None:
            markers.add(marker)
            replayed[(record.topic, record.partition, record.offset)] = marker
    return Replays(frozenset(markers), replayed)


def existing_topics(settings: KafkaSettings) -> set[str]:
    admin = make_admin(settings)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def publish(settings: KafkaSettings, items: list[Letter]) -> None:
    producer = make_producer(settings)
    try:
        futures = [
            producer.send(
                item.letter.topic,
                key=None if item.letter.key is None else item.letter.key.encode(),
                value=item.original(),
                headers=[(REPLAYED_FROM_HEADER, item.marker.encode())],
            )
            for item in items
        ]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


# ---------------------------------------------------------------------- commands


def describe(item: Letter, state: str) -> dict[str, object]:
    """One dead letter for people and scripts: never the original value (it may hold a
    phone number or an SMS body)."""
    letter = item.letter
    return {
        "dead_letter": item.marker,
        "service": letter.service,
        "source": letter.where,
        "key": letter.key,
        "reason": mask_phones_in(letter.reason),
        "error_type": letter.error_type,
        "occurred_at": letter.occurred_at.isoformat(),
        "value_truncated": letter.value_truncated,
        "replayed_from": letter.replayed_from,
        "state": state,
    }


def with_states(
    settings: KafkaSettings, service: str | None, since: datetime | None, err: TextIO
) -> list[tuple[Letter, str]]:
    """The dead letters ``service`` and ``since`` choose, each with its state now."""
    letters = read_letters(settings, err)
    topics = existing_topics(settings)
    replays = read_replays(settings, letters, topics)
    return [(item, state_of(item, replays, topics)) for item in select(letters, service, since)]


def list_letters(
    settings: KafkaSettings,
    service: str | None,
    since: datetime | None,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    chosen = with_states(settings, service, since, err)
    for item, state in chosen:
        row = describe(item, state)
        if as_json:
            print(json.dumps(row), file=out)
        else:
            when = item.letter.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{when}  {row['service']:<13} {row['source']:<40} {row['reason']}"
                f"\n{'':21}{row['dead_letter']}: {row['state']}",
                file=out,
            )
    if not as_json:
        print(f"{len(chosen)} dead letters", file=out)
    return OK


def replay(
    settings: KafkaSettings,
    service: str | None,
    since: datetime | None,
    dry_run: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> list[Letter]:
    """Publishes (unless ``dry_run``) and returns the dead letters replayed now."""
    due, others = [], 0
    for item, state in with_states(settings, service, since, err):
        if state == REPLAYABLE:
            due.append(item)
        else:
            others += 1
            print(f"  skip     {item.marker} ({item.letter.where}): {state}", file=out)
    verb = "would replay" if dry_run else "replay"
    for item in due:
        print(
            f"  {verb:<8} {item.marker} -> {item.letter.where} key {item.letter.key}",
            file=out,
        )
    if due and not dry_run:
        publish(settings, due)
    done = "would be replayed" if dry_run else "replayed"
    print(f"{len(due)} {done}, {others} skipped", file=out)
    return due


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow dead-letters",
        description="List the dead-letters topic, or replay its records to their source topics.",
        epilog="exit codes: 0 ok, 2 usage, 3 broker unreachable",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="service, source topic[partition]@offset, reason, time")
    again = sub.add_parser("replay", help="re-publish the originals, each dead letter once")
    for command in (listing, again):
        command.add_argument("--service", help="only dead letters of this service")
        command.add_argument("--since", help="only newer ones: 30m, 1h, 2d or an RFC 3339 time")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again.add_argument("--dry-run", action="store_true", help="show what would be published")
    return parser


def main(argv: list[str]) -> int:
    return run_command("dead-letters", build_parser(), argv, _run)


def _run(args: argparse.Namespace, settings: KafkaSettings) -> int:
    try:
        since = None if args.since is None else parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        print(f"smsflow dead-letters: {exc}", file=sys.stderr)
        return USAGE
    require_broker(settings)
    if args.action == "list":
        return list_letters(settings, args.service, since, args.json)
    replay(settings, args.service, since, args.dry_run)
    return OK
