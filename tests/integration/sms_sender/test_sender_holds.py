"""Delivery that holds: a STOP that arrives while SMS queue, and a gateway outage of two minutes.

Each test runs a sender of its own against a simulator of its own, on the real broker.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import pytest

from schemas.dead_letters import DeadLetter
from schemas.sms import NumberOptOut, OptOutSource, SmsStatus
from schemas.topics import DEAD_LETTERS, OPT_OUTS, SMS_REQUESTS
from services.common.codec import decode, encode
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer
from tests.harness import StartService
from tests.integration.sms_sender.processes import Sender, Simulator, free_port
from tests.integration.sms_sender.traffic import final_status, make_requests, statuses_by_key
from tests.support import fresh_settings, produce, read_all, wait_for

pytestmark = pytest.mark.integration

NUMBER = "+358409990001"


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return fresh_settings(kafka_bootstrap)


@pytest.fixture
def simulator(service: StartService) -> tuple[Simulator, int]:
    port = free_port()
    return service(Simulator("http", port, latency_ms=5, callback_delay_ms=20)), port


def _settled(settings: KafkaSettings, keys: set[str], final: tuple[SmsStatus, ...]):  # type: ignore[no-untyped-def]
    def probe() -> dict | None:  # type: ignore[type-arg]
        by_key = statuses_by_key(settings)
        done = all(final_status(by_key.get(k, [])) in final for k in keys)
        return by_key if done else None

    return probe


def test_a_stop_while_sms_queue_reaches_at_most_one_more_to_the_gateway(
    settings: KafkaSettings, simulator: tuple[Simulator, int]
) -> None:
    sim, port = simulator
    sender = Sender(settings, sim, "http", port, SMSFLOW_SENDER_MESSAGES_PER_S="1").start()
    try:
        requests = [r.model_copy(update={"to": NUMBER}) for r in make_requests(20, "stop-race")]
        keys = {r.idempotency_key for r in requests}
        produce(settings, SMS_REQUESTS, requests)
        wait_for(
            lambda: any(m["to"] == NUMBER for m in sim.messages()),
            what="the first SMS at the gateway",
        )
        stop = NumberOptOut(
            account_id="acme",
            number=NUMBER,
            opted_out=True,
            keyword="STOP",
            source=OptOutSource.REPLY,
        )
        produce(settings, OPT_OUTS, [stop])
        by_key = wait_for(
            _settled(settings, keys, (SmsStatus.DELIVERED, SmsStatus.SKIPPED)),
            timeout_s=60,
            what="every SMS delivered or skipped",
        )
    finally:
        assert sender.stop() == 0
    reached = [m for m in sim.messages() if m["to"] == NUMBER]
    assert 1 <= len(reached) <= 2  # the first, and at most one already on its way
    skipped = [k for k in keys if final_status(by_key[k]) is SmsStatus.SKIPPED]
    assert len(skipped) == 20 - len(reached)
    for key in skipped:
        (event,) = [e for e in by_key[key] if e.status is SmsStatus.SKIPPED]
        assert event.reason == "opted_out"
        assert event.to_masked is not None
        assert NUMBER not in event.to_masked


OUTAGE_S = 120  # the two-minute outage of the issue: far past every retry schedule


def test_a_gateway_outage_is_waited_out_and_the_backlog_drains_within_rate_limits(
    settings: KafkaSettings, simulator: tuple[Simulator, int]
) -> None:
    sim, port = simulator
    rate = 50
    sender = Sender(settings, sim, "http", port, SMSFLOW_SENDER_MESSAGES_PER_S=str(rate)).start()
    try:
        sim.post("/_sim/config", {"down": True})
        requests = make_requests(200, "outage")
        keys = {r.idempotency_key for r in requests}
        produce(settings, SMS_REQUESTS, requests)

        def deferred() -> bool:
            by_key = statuses_by_key(settings)
            return any(
                e.status is SmsStatus.DEFERRED and e.reason == "gateway_unavailable"
                for k in keys
                for e in by_key.get(k, [])
            )

        wait_for(deferred, timeout_s=30, what="a deferred (gateway_unavailable) status")
        time.sleep(OUTAGE_S)
        during = len(sim.get("/_sim/requests"))
        sim.post("/_sim/config", {"down": False})
        by_key = wait_for(
            _settled(settings, keys, (SmsStatus.DELIVERED, SmsStatus.FAILED)),
            timeout_s=90,
            interval_s=1,
            what="every SMS settled after the outage",
        )
    finally:
        assert sender.stop() == 0
    finals = Counter(final_status(by_key[k]) for k in keys)
    assert finals == {SmsStatus.DELIVERED: 200}  # none failed
    accepted = Counter(m["idempotency_key"] for m in sim.messages() if m["idempotency_key"] in keys)
    assert set(accepted.values()) == {1}
    requests_seen = sim.get("/_sim/requests")
    # No retry storm: the breaker opened after a few failures, then one probe per cool-down;
    # after the outage, one request per SMS (nothing was accepted during it).
    assert during < 100, during
    assert len(requests_seen) < 200 + 100
    # The backlog drained within the rate limit (a burst of one second's worth, then rate/s).
    stamps = sorted(m["received_at"] for m in sim.messages() if m["idempotency_key"] in keys)
    first, last = (
        datetime.fromisoformat(s.replace("Z", "+00:00")) for s in (stamps[0], stamps[-1])
    )
    assert (last - first).total_seconds() >= (200 - rate) / rate - 0.5


def _produce_raw(settings: KafkaSettings, records: list[tuple[str, bytes]]) -> None:
    producer = make_producer(settings, max_request_size=2 * 1024 * 1024)
    try:
        for key, value in records:
            producer.send(settings.topic(SMS_REQUESTS), key=key.encode(), value=value)
        producer.flush(30)
    finally:
        producer.close()


def test_poison_requests_are_dead_lettered_small_and_the_sender_keeps_serving(
    settings: KafkaSettings, simulator: tuple[Simulator, int]
) -> None:
    sim, port = simulator
    sender = Sender(settings, sim, "http", port).start()
    crlf, huge, segments, normal = make_requests(4, "poison")
    crlf = crlf.model_copy(update={"idempotency_key": "poison-crlf\r\nX-Injected: 1"})
    huge = huge.model_copy(update={"body": "Hei! " * 40_000})  # 200 KB, schema-valid
    garbage = b'{"event_type": "sms.requested", "body": "' + b"\x01" * 200_000 + b'"}'
    many = encode(segments).replace(b'"segments":1', b'"segments":1e9')
    try:
        _produce_raw(
            settings,
            [
                (crlf.key, encode(crlf)),
                (huge.key, encode(huge)),
                (segments.key, many),
                ("acme:garbage", garbage),  # not JSON: each byte escapes to 6 in a letter
                (normal.key, encode(normal)),
            ],
        )
        wait_for(
            lambda: any(m["idempotency_key"] == normal.idempotency_key for m in sim.messages()),
            what="the normal SMS after the poison sent",
        )
        letters = wait_for(
            lambda: (found := read_all(settings, DEAD_LETTERS)) and len(found) >= 4 and found,
            what="four dead letters",
        )
        assert sender.process is not None
        assert sender.process.poll() is None  # still running, never restarted
    finally:
        assert sender.stop() == 0
    assert all(len(value or b"") < 1024 * 1024 for _, value in letters)
    decoded = [decode(DeadLetter, value) for _, value in letters]
    reasons = " | ".join(letter.reason for letter in decoded)
    assert "idempotency_key" in reasons
    assert "segments: 1000000000" in reasons
    assert "body: 200000 characters" in reasons
    truncated = [letter for letter in decoded if letter.value_truncated]
    assert {letter.value_size for letter in truncated} == {len(encode(huge)), len(garbage)}
    assert len(sim.messages()) == 1  # only the normal SMS reached the gateway
