"""The sender against the simulator's Twilio-shaped API, which does not de-duplicate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from schemas.sms import InboundSms, ProviderOptOut, SmsStatus
from schemas.topics import SMS_REQUESTS
from services.common.settings import KafkaSettings
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
from tests.support import fresh_settings, produce, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str) -> Iterator[tuple[KafkaSettings, Simulator, Sender]]:
    settings = fresh_settings(kafka_bootstrap)
    account = design_documents()[:1]
    with sender_and_simulator(settings, "twilio", account, latency_ms=20, callback_delay_ms=20) as (
        sim,
        sender,
    ):
        yield settings, sim, sender


def test_timed_out_sends_are_never_repeated_and_callbacks_settle_them(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, sender = stack
    # No fail_rate here: a Twilio 5xx is ambiguous now, and the simulator's refusals send no
    # callback to settle it (see the 5xx test below).
    sim.post(
        "/_sim/config",
        {"throttle_rate": 0.1, "timeout_rate": 0.2, "timeout_delay_ms": 1500},
    )
    requests = make_requests(200, "tw")
    keys = {r.idempotency_key for r in requests}
    produce(settings, SMS_REQUESTS, requests)

    def settled() -> dict | None:  # type: ignore[type-arg]
        by_key = statuses_by_key(settings)
        done = all(final_status(by_key.get(k, [])) is SmsStatus.DELIVERED for k in keys)
        return by_key if done else None

    by_key = wait_for(settled, timeout_s=60, interval_s=1, what="every SMS delivered")
    sim.post("/_sim/config", {"fail_rate": 0, "throttle_rate": 0, "timeout_rate": 0})
    accepted = Counter(m["idempotency_key"] for m in sim.messages() if m["idempotency_key"] in keys)
    assert set(accepted) == keys
    assert set(accepted.values()) == {1}  # no message twice, though answers timed out
    assert sender.metric('smsflow_sender_gateway_calls_total{result="ambiguous"}') > 10
    sent_ids = {m["idempotency_key"]: m["id"] for m in sim.messages()}
    for key in keys:
        sent = [e for e in by_key[key] if e.status is SmsStatus.SENT]
        assert {e.provider_message_id for e in sent} == {sent_ids[key]}


def test_5xx_answers_are_never_resent_on_twilio(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    """A proxy's 502 after the message was created (error_after_accept) and Twilio's own
    500/503 are ambiguous: the key waits for a callback and is never sent twice."""
    settings, sim, _ = stack
    sim.post("/_sim/config", {"error_after_accept_rate": 0.3, "fail_rate": 0.1})
    requests = make_requests(200, "tw5xx")
    keys = {r.idempotency_key for r in requests}
    produce(settings, SMS_REQUESTS, requests)

    def settled() -> dict | None:  # type: ignore[type-arg]
        by_key = statuses_by_key(settings)
        done = all(final_status(by_key.get(k, [])) in _SETTLED for k in keys)
        return by_key if done else None

    by_key = wait_for(settled, timeout_s=60, interval_s=1, what="every SMS settled")
    sim.post("/_sim/config", {"error_after_accept_rate": 0, "fail_rate": 0})
    accepted = Counter(m["idempotency_key"] for m in sim.messages() if m["idempotency_key"] in keys)
    assert set(accepted.values()) == {1}  # 0 duplicates
    answers = Counter(
        r["status"] for r in sim.get("/_sim/requests") if r["idempotency_key"] in keys
    )
    assert answers[502] > 30  # the fault really happened
    for key in keys:
        final = final_status(by_key[key])
        if key in accepted:  # created, whatever the answer said: its callback settles it
            assert final is SmsStatus.DELIVERED, key
        else:  # refused by a 500/503, which a client cannot tell from one after creation
            failed = [e for e in by_key[key] if e.status is SmsStatus.FAILED]
            assert [e.reason for e in failed] == ["ambiguous_outcome"], key
    # Each key reached the gateway once: a 5xx was never followed by a resend.
    assert sum(answers.values()) - answers[429] == len(keys)


_SETTLED = (SmsStatus.DELIVERED, SmsStatus.FAILED)


def test_an_opted_out_recipient_fails_with_21610_and_is_reported_for_opt_out(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    # A number no other test sends to: the simulator keeps its opt-out list.
    request = make_requests(1, "optout")[0].model_copy(update={"to": "+358409999901"})
    sim.post("/_sim/opt-outs", {"number": request.to})
    produce(settings, SMS_REQUESTS, [request])

    def failed() -> list | None:  # type: ignore[type-arg]
        events = statuses_by_key(settings).get(request.idempotency_key, [])
        return events if final_status(events) is SmsStatus.FAILED else None

    (event,) = wait_for(failed, what="the failed status")
    assert (event.error_code, event.reason) == ("21610", "recipient_opted_out")
    opt_outs = [e for e in inbound_events(settings) if isinstance(e, ProviderOptOut)]
    assert [(e.key, e.idempotency_key, e.contact_id) for e in opt_outs] == [
        (f"acme:{request.to}", request.idempotency_key, request.contact_id)
    ]
    attempts = [
        r for r in sim.get("/_sim/requests") if r["idempotency_key"] == request.idempotency_key
    ]
    assert [r["status"] for r in attempts] == [400]  # permanent: not retried


def test_sends_from_one_number_keep_to_its_rate_limit(
    kafka_bootstrap: str, stack: tuple[KafkaSettings, Simulator, Sender]
) -> None:
    _, sim, _ = stack
    settings = fresh_settings(kafka_bootstrap)
    limited = Sender(
        settings, sim, "twilio", free_port(), SMSFLOW_SENDER_MESSAGES_PER_S="10"
    ).start()
    try:
        requests = make_requests(30, "paced", sender="+358457654321")
        produce(settings, SMS_REQUESTS, requests)
        keys = {r.idempotency_key for r in requests}

        def accepted() -> list | None:  # type: ignore[type-arg]
            found = [m for m in sim.messages() if m["idempotency_key"] in keys]
            return found if len(found) == len(keys) else None

        found = wait_for(accepted, what="the paced requests sent")
    finally:
        assert limited.stop() == 0
    stamps = sorted(_at(m["received_at"]) for m in found)
    # A burst of 10, then 10 per second: the last of 30 leaves no sooner than 2 s after the first.
    assert stamps[-1] - stamps[0] >= 1.9
    assert sum(1 for s in stamps if s - stamps[0] < 1.0) <= 20


def _at(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_twilio_signed_inbound_stop_reaches_sms_inbound(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    answer = sim.post(
        "/_sim/inbound", {"from": "+358401115566", "to": "+358451234567", "body": "Stop"}
    )
    assert (answer["forwarded"], answer["status"]) == (True, 200)
    (event,) = [
        e
        for e in inbound_events(settings)
        if isinstance(e, InboundSms) and e.from_ == "+358401115566"
    ]
    assert (event.account_id, event.body, event.provider_message_id) == (
        "acme",
        "Stop",
        answer["id"],
    )
