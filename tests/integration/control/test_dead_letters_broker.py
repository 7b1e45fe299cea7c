"""``smsflow dead-letters list | replay`` on the real broker: filters, dry run, provenance
header, each dead letter replayed once, repeats and truncated originals left alone."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.dead_letters import DeadLetter
from schemas.topics import ACTIONS, CONTACT_CHANGES, DEAD_LETTERS
from services.common.codec import encode
from services.common.dead_letters import REPLAYED_FROM_HEADER, dead_letter
from services.common.settings import KafkaSettings
from services.control.dead_letters import list_letters, replay
from services.control.kafka import make_producer
from services.control.topic_reader import Record, read_topics

pytestmark = pytest.mark.integration


def put(settings: KafkaSettings, topic: str, key: str, value: bytes) -> Record:
    """Produce one raw record and return where it landed."""
    producer = make_producer(settings)
    try:
        meta = producer.send(topic, key=key.encode(), value=value).get(timeout=30)
    finally:
        producer.close()
    return Record(topic, meta.partition, meta.offset, key, value, 0)


def bury(settings: KafkaSettings, letter: DeadLetter) -> None:
    producer = make_producer(settings)
    try:
        producer.send(settings.topic(DEAD_LETTERS), key=None, value=encode(letter)).get(30)
    finally:
        producer.close()


def letter_for(record: Record, service: str, reason: str, **extra: object) -> DeadLetter:
    return dead_letter(
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=None if record.key is None else record.key.encode(),
        value=record.value,
        reason=reason,
        **extra,  # type: ignore[arg-type]
    )


def listed(settings: KafkaSettings, **filters: object) -> list[dict[str, object]]:
    out = io.StringIO()
    list_letters(settings, filters.get("service"), filters.get("since"), True, out=out)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_list_replay_once_and_repeats(kafka_settings: KafkaSettings) -> None:
    actions = kafka_settings.topic(ACTIONS)
    original = b'{"event_type": "action.requested", "account_id": "acme", "x": 1}'
    failed = put(kafka_settings, actions, "acme:1", original)
    bury(kafka_settings, letter_for(failed, "action-runner", "unknown account 'acme'"))
    changes = put(kafka_settings, kafka_settings.topic(CONTACT_CHANGES), "acme:2", b"{bad")
    bury(kafka_settings, letter_for(changes, "enroller", "malformed JSON"))
    truncated = letter_for(failed, "action-runner", "too big").model_copy(
        update={"value_truncated": True, "value": original[:10].decode()}
    )
    bury(kafka_settings, truncated)
    webhook = DeadLetter(
        service="sms-sender",
        topic="webhooks/inbound",
        partition=-1,
        offset=-1,
        reason="to: no account sends from +35845*****67",
        error_type="Rejection",
        value='{"From": "+358451234567"}',
    )
    bury(kafka_settings, webhook)

    rows = listed(kafka_settings)
    assert [r["service"] for r in rows] == [
        "action-runner",
        "enroller",
        "action-runner",
        "sms-sender",
    ]
    assert rows[0]["source"] == f"{actions}[{failed.partition}]@{failed.offset}"
    assert rows[0]["state"] == "replayable"
    assert "truncated" in str(rows[2]["state"])
    assert "not a topic" in str(rows[3]["state"])
    assert "+358451234567" not in json.dumps(rows)  # the original value is never printed
    assert [r["service"] for r in listed(kafka_settings, service="enroller")] == ["enroller"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert listed(kafka_settings, since=future) == []

    before = read_topics(kafka_settings, [actions])
    out = io.StringIO()
    assert len(replay(kafka_settings, "action-runner", None, dry_run=True, out=out)) == 1
    assert "would replay" in out.getvalue()
    assert read_topics(kafka_settings, [actions]) == before  # a dry run publishes nothing

    replayed = replay(kafka_settings, "action-runner", None, dry_run=False, out=io.StringIO())
    assert [item.letter.service for item in replayed] == ["action-runner"]
    after = read_topics(kafka_settings, [actions])
    new = [r for r in after if r not in before]
    assert len(new) == 1
    (copy,) = new
    assert (copy.key, copy.value) == ("acme:1", original)
    marker = dict(copy.headers)[REPLAYED_FROM_HEADER]
    assert marker is not None
    assert marker.decode() == replayed[0].marker
    assert replayed[0].marker.startswith("dead-letters:")

    # However often it runs: nothing more for that dead letter.
    assert replay(kafka_settings, "action-runner", None, False, out=io.StringIO()) == []
    assert len(read_topics(kafka_settings, [actions])) == len(after)
    assert listed(kafka_settings)[0]["state"] == "replayed"

    # The replayed record fails again: the new dead letter is a repeat, never replayed.
    again = letter_for(copy, "action-runner", "unknown account 'acme'", headers=copy.headers)
    assert again.replayed_from == replayed[0].marker
    bury(kafka_settings, again)
    # ... also when a service built it without the headers: the failed record carries them.
    bury(kafka_settings, letter_for(copy, "action-runner", "still unknown"))
    rows = listed(kafka_settings, service="action-runner")
    assert [str(r["state"]).startswith("repeat of") for r in rows[-2:]] == [True, True]
    assert replay(kafka_settings, "action-runner", None, False, out=io.StringIO()) == []
    assert len(read_topics(kafka_settings, [actions])) == len(after)


def test_replays_binary_originals_byte_for_byte(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(CONTACT_CHANGES)
    raw = b"\xff\xfe not utf-8"
    failed = put(kafka_settings, topic, "acme:9", raw)
    letter = letter_for(failed, "enroller", "malformed")
    assert letter.value_encoding == "base64"
    bury(kafka_settings, letter)
    since = datetime.now(UTC) - timedelta(hours=1)
    replay(kafka_settings, None, since, False, out=io.StringIO())
    values = [r.value for r in read_topics(kafka_settings, [topic], key="acme:9")]
    assert values == [raw, raw]
