"""Pure parts of ``smsflow dead-letters``: --since, what is replayable, the shared builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.dead_letters import DeadLetter
from services.common.dead_letters import REPLAYED_FROM_HEADER, dead_letter, header_value
from services.control.dead_letters import (
    REPLAYABLE,
    REPLAYED,
    Letter,
    Replays,
    describe,
    parse_since,
    select,
    state_of,
)
from services.control.topic_reader import Record

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOPIC = "smsflow.actions"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("45s", NOW - timedelta(seconds=45)),
        ("2026-11-29T08:00:00Z", datetime(2026, 11, 29, 8, tzinfo=UTC)),
        ("2026-11-29T10:00:00+02:00", datetime(2026, 11, 29, 8, tzinfo=UTC)),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1w", "2026-11-29T08:00:00", ""])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, NOW)


def item(offset: int = 0, **fields: object) -> Letter:
    values: dict[str, object] = {
        "service": "action-runner",
        "topic": TOPIC,
        "partition": 1,
        "offset": 7,
        "key": "acme:1",
        "reason": "unknown account 'acme' for +358401234567",
        "error_type": "DecodeError",
        "value": "{}",
        "occurred_at": NOW,
    }
    values.update(fields)
    return Letter(
        Record("smsflow.dead-letters", 2, offset, "acme:1", b"", 0),
        DeadLetter.model_validate(values),
    )


NOTHING = Replays(frozenset(), {})


def test_states_in_order_of_precedence() -> None:
    topics = {TOPIC}
    assert state_of(item(), NOTHING, topics) == REPLAYABLE
    assert state_of(item(), Replays(frozenset({"dead-letters:2@0"}), {}), topics) == REPLAYED
    assert state_of(item(replayed_from="dead-letters:0@3"), NOTHING, topics).startswith(
        "repeat of dead-letters:0@3"
    )
    # A service that did not keep the header: the failed record itself was a replay.
    found = Replays(frozenset(), {(TOPIC, 1, 7): "dead-letters:0@3"})
    assert state_of(item(), found, topics).startswith("repeat of dead-letters:0@3")
    assert "truncated" in state_of(item(value_truncated=True), NOTHING, topics)
    assert state_of(item(value=None), NOTHING, topics) == "no original value"
    assert "not a topic" in state_of(item(topic="webhooks/inbound"), NOTHING, topics)


def test_select_by_service_and_time() -> None:
    old = item(0, occurred_at=NOW - timedelta(hours=3))
    new = item(1, service="enroller")
    assert select([old, new], None, None) == [old, new]
    assert select([old, new], "enroller", None) == [new]
    assert select([old, new], None, NOW - timedelta(hours=1)) == [new]


def test_originals_come_back_byte_for_byte_and_are_never_described() -> None:
    raw = b"\xff\x00binary"
    letter = dead_letter(
        service="enroller", topic=TOPIC, partition=0, offset=1, key=b"k", value=raw, reason="x"
    )
    assert Letter(item().record, letter).original() == raw
    row = describe(item(), REPLAYABLE)
    assert "value" not in row
    assert "+358401234567" not in str(row)  # reasons are masked too


def test_builder_keeps_a_replayed_records_provenance() -> None:
    headers = [("other", b"x"), (REPLAYED_FROM_HEADER, b"dead-letters:3@9")]
    letter = dead_letter(
        service="action-runner",
        topic=TOPIC,
        partition=0,
        offset=1,
        key=b"acme:1",
        value=b"{}",
        reason="again",
        headers=headers,
    )
    assert letter.replayed_from == "dead-letters:3@9"
    assert header_value({REPLAYED_FROM_HEADER: b"dead-letters:1@2"}, REPLAYED_FROM_HEADER) == (
        "dead-letters:1@2"
    )
    assert header_value(None, REPLAYED_FROM_HEADER) is None
    plain = dead_letter(
        service="s", topic=TOPIC, partition=0, offset=1, key=None, value=b"{}", reason="r"
    )
    assert plain.replayed_from is None
    assert plain.value_truncated is False
