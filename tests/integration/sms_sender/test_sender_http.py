"""The sender against the real broker and the real simulator's generic API (de-duplicating)."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime

import pytest

from schemas.dead_letters import DeadLetter
from schemas.sms import InboundSms, SmsStatus
from schemas.topics import DEAD_LETTERS, SMS_REQUESTS
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer
from tests.integration.sms_sender.processes import (
    Sender,
    Simulator,
    free_port,
    sender_and_simulator,
)
from tests.integration.sms_sender.traffic import (
    final_status,
    inbound_events,
    make_requests,
    statuses_by_key,
)
from tests.samples import design_documents
from tests.support import fresh_settings, produce, read_all, read_models, wait_for

pytestmark = pytest.mark.integration

COUNT = 1000


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str) -> Iterator[tuple[KafkaSettings, Simulator, Sender]]:
    settings = fresh_settings(kafka_bootstrap)
    account = design_documents()[:1]
    with sender_and_simulator(settings, "http", account, latency_ms=20, callback_delay_ms=20) as (
        sim,
        sender,
    ):
        yield settings, sim, sender


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def faulty_run(stack: tuple[KafkaSettings, Simulator, Sender]) -> dict[str, object]:
    """1,000 requests through 30 % faults: 500/503, 429 + Retry-After 1, accepted-then-late."""
    settings, sim, sender = stack
    sim.post(
        "/_sim/config",
        {
            "fail_rate": 0.1,
            "throttle_rate": 0.1,
            "timeout_rate": 0.1,
            "timeout_delay_ms": 1500,
            "retry_after_s": 1,
        },
    )
    requests = make_requests(COUNT, "fault")
    produce(settings, SMS_REQUESTS, requests)
    keys = {r.idempotency_key for r in requests}
    wait_for(
        lambda: len({m["idempotency_key"] for m in sim.messages()} & keys) == COUNT,
        timeout_s=90,
        interval_s=1,
        what="every request accepted by the gateway",
    )

    def all_delivered() -> dict[str, list] | None:  # type: ignore[type-arg]
        by_key = statuses_by_key(settings)
        done = all(final_status(by_key.get(k, [])) is SmsStatus.DELIVERED for k in keys)
        return by_key if done else None

    by_key = wait_for(all_delivered, timeout_s=60, interval_s=1, what="every SMS delivered")
    sim.post("/_sim/config", {"fail_rate": 0, "throttle_rate": 0, "timeout_rate": 0})
    return {
        "keys": keys,
        "statuses": by_key,
        "requests": sim.get("/_sim/requests"),
        "ambiguous": sender.metric('smsflow_sender_gateway_calls_total{result="ambiguous"}'),
    }


def test_every_message_is_accepted_exactly_once_through_faults(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    _, sim, _ = stack
    keys = faulty_run["keys"]
    accepted = Counter(m["idempotency_key"] for m in sim.messages() if m["idempotency_key"] in keys)  # type: ignore[operator]
    assert len(accepted) == COUNT
    assert set(accepted.values()) == {1}
    answers = Counter(
        r["status"]
        for r in faulty_run["requests"]  # type: ignore[attr-defined]
        if r["idempotency_key"] in keys  # type: ignore[operator]
    )
    # The faults really happened: refusals were retried, and answers timed out (accepted,
    # then resolved by the delivery callback or by resending the same key).
    assert answers[429] > 50
    assert answers[500] + answers[503] > 50
    assert faulty_run["ambiguous"] > 40  # type: ignore[operator]


def test_statuses_are_sent_then_delivered_once_each_with_the_provider_id(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    _, sim, _ = stack
    provider_ids = {m["idempotency_key"]: m["id"] for m in sim.messages()}
    by_key = faulty_run["statuses"]
    for key in faulty_run["keys"]:  # type: ignore[attr-defined]
        events = by_key[key]  # type: ignore[index]
        distinct = {(e.status, e.event_id) for e in events}
        assert Counter(s for s, _ in distinct) == {SmsStatus.SENT: 1, SmsStatus.DELIVERED: 1}, key
        sent = next(e for e in events if e.status is SmsStatus.SENT)
        assert sent.provider_message_id == provider_ids[key]
        assert sent.to_masked == "+3584*****00"
        assert sent.attempts >= 1


def test_retry_after_is_honoured(faulty_run: dict[str, object]) -> None:
    per_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in faulty_run["requests"]:  # type: ignore[attr-defined]
        if r["idempotency_key"] in faulty_run["keys"]:  # type: ignore[operator]
            per_key[r["idempotency_key"]].append((_at(r["received_at"]), r["status"]))
    checked = 0
    for attempts in per_key.values():
        attempts.sort()
        for (at, status), (next_at, _) in itertools.pairwise(attempts):
            if status == 429:
                checked += 1
                assert next_at - at >= 0.99, attempts  # Retry-After: 1 (ms-precision stamps)
    assert checked > 50


def test_replaying_the_whole_request_topic_sends_nothing_new(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    settings, sim, sender = stack
    requests_before = len(sim.get("/_sim/requests"))
    event_ids_before = {e.event_id for events in faulty_run["statuses"].values() for e in events}  # type: ignore[attr-defined]
    duplicates_before = sender.metric('smsflow_sender_requests_total{outcome="duplicate"}')
    producer = make_producer(settings)
    replayed = 0
    for key, value in read_all(settings, SMS_REQUESTS):
        if value is not None and b'"fault-' in value:
            producer.send(settings.topic(SMS_REQUESTS), key=(key or "").encode(), value=value)
            replayed += 1
    producer.flush(30)
    producer.close()
    assert replayed == COUNT
    wait_for(
        lambda: (
            sender.metric('smsflow_sender_requests_total{outcome="duplicate"}')
            >= duplicates_before + COUNT
        ),
        timeout_s=60,
        what="the replay handled",
    )
    assert len(sim.get("/_sim/requests")) == requests_before  # not one gateway call
    by_key = statuses_by_key(settings)
    event_ids_after = {e.event_id for k in faulty_run["keys"] for e in by_key[k]}  # type: ignore[attr-defined]
    assert event_ids_after == event_ids_before  # re-announced as the same events


def test_a_new_sender_rebuilds_its_ledger_from_kafka_and_sends_nothing_again(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    """Another consumer group reads every request from the start: all are known keys."""
    settings, sim, _ = stack
    requests_before = len(sim.get("/_sim/requests"))
    group = f"{settings.topic_prefix}rebuild-check"  # a group of its own in every run
    fresh = Sender(settings, sim, "http", free_port(), SMSFLOW_SENDER_GROUP_ID=group)
    fresh.start()
    try:
        total = len(read_all(settings, SMS_REQUESTS))
        wait_for(
            lambda: fresh.metric("smsflow_sender_requests_total") >= total,
            timeout_s=60,
            what="the second sender to read every request",
        )
        assert fresh.metric('smsflow_sender_requests_total{outcome="duplicate"}') >= COUNT
        assert len(sim.get("/_sim/requests")) == requests_before
        # Alone in its group, it joins once: no second, self-requested rebalance right after
        # the first join (the consumer joins only once the topic's metadata is known).
        assert fresh.log.read_text().count('"partitions_assigned"') == 1
    finally:
        assert fresh.stop() == 0


def test_an_inbound_stop_reaches_sms_inbound_with_its_account(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    answer = sim.post(
        "/_sim/inbound", {"from": "+358401112233", "to": "+358451234567", "body": "STOP"}
    )
    assert (answer["forwarded"], answer["status"]) == (True, 200)
    inbound = [e for e in inbound_events(settings) if isinstance(e, InboundSms)]
    stop = [e for e in inbound if e.from_ == "+358401112233"]
    assert len(stop) == 1
    assert (stop[0].key, stop[0].body, stop[0].to) == (
        "acme:+358401112233",
        "STOP",
        "+358451234567",
    )


def test_a_non_stop_reply_to_an_unknown_number_is_dead_lettered_and_answered_200(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    answer = sim.post(
        "/_sim/inbound", {"from": "+358401112244", "to": "+15550001111", "body": "START"}
    )
    assert answer["status"] == 200  # A8: a 400 would not be retried, and nothing is gained
    letters = read_models(settings, DEAD_LETTERS, DeadLetter)
    assert any(
        d.topic == "webhooks/inbound" and "+358401112244" in (d.value or "") for d in letters
    )
    inbound = inbound_events(settings)
    assert not any(isinstance(e, InboundSms) and e.from_ == "+358401112244" for e in inbound)


def test_a_bad_record_is_dead_lettered_and_the_next_one_still_sent(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    good = make_requests(1, "after-bad")[0]
    producer = make_producer(settings)
    topic = settings.topic(SMS_REQUESTS)
    producer.send(topic, key=good.key.encode(), value=b'{"event_type": "sms.requested", "to": 5')
    producer.send(topic, key=good.key.encode(), value=good.model_dump_json(by_alias=True).encode())
    producer.flush(30)
    producer.close()
    wait_for(
        lambda: any(m["idempotency_key"] == good.idempotency_key for m in sim.messages()),
        what="the good request after the bad one",
    )
    letters = [d for d in read_models(settings, DEAD_LETTERS, DeadLetter) if d.topic == topic]
    assert len(letters) == 1
    assert letters[0].service == "sms-sender"
    assert "malformed JSON" in letters[0].reason
    assert letters[0].key == good.key


def test_logs_carry_masked_numbers_and_no_bodies(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    _, _, sender = stack
    text = sender.log.read_text()
    assert "sms_sent" in text  # one line per handled request
    assert "Tervetuloa" not in text
    assert re.search(r"\+3584\d{8}", text) is None
    assert "+3584*****" in text


def test_after_a_graceful_stop_the_group_resumes_after_everything_handled(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    """SIGTERM drains and commits: the restarted sender handles only what is new."""
    settings, sim, sender = stack
    assert sender.stop() == 0
    sender.start()
    (fresh,) = make_requests(1, "after-restart")
    produce(settings, SMS_REQUESTS, [fresh])
    wait_for(
        lambda: any(m["idempotency_key"] == fresh.idempotency_key for m in sim.messages()),
        what="the new request sent",
    )
    wait_for(lambda: sender.metric("smsflow_sender_requests_total") >= 1, what="its outcome")
    assert sender.metric("smsflow_sender_requests_total") == 1


def test_5xx_after_accept_is_resent_with_the_same_key_no_duplicate_none_lost(
    stack: tuple[KafkaSettings, Simulator, Sender], faulty_run: dict[str, object]
) -> None:
    """The generic API replays the first answer for a key, so a proxy's 502 after the
    message was accepted is retried safely: 0 duplicates, 0 lost."""
    settings, sim, _ = stack
    sim.post("/_sim/config", {"error_after_accept_rate": 0.3})
    requests = make_requests(200, "proxy502")
    keys = {r.idempotency_key for r in requests}
    produce(settings, SMS_REQUESTS, requests)

    def all_delivered() -> dict[str, list] | None:  # type: ignore[type-arg]
        by_key = statuses_by_key(settings)
        done = all(final_status(by_key.get(k, [])) is SmsStatus.DELIVERED for k in keys)
        return by_key if done else None

    wait_for(all_delivered, timeout_s=60, interval_s=1, what="every SMS delivered")
    sim.post("/_sim/config", {"error_after_accept_rate": 0})
    accepted = Counter(m["idempotency_key"] for m in sim.messages() if m["idempotency_key"] in keys)
    assert set(accepted) == keys  # 0 lost
    assert set(accepted.values()) == {1}  # 0 duplicates
    answers = Counter(
        r["status"] for r in sim.get("/_sim/requests") if r["idempotency_key"] in keys
    )
    assert answers[502] > 30
    assert answers[201] >= answers[502]  # each 502 was followed by a replayed 201
