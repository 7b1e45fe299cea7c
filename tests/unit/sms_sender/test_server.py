"""Webhooks, health and metrics over HTTP, with an in-memory publisher."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from schemas.dead_letters import DeadLetter
from schemas.ledger import LedgerState
from schemas.sms import InboundSms, SmsStatus
from schemas.topics import DEAD_LETTERS, SMS_INBOUND, SMS_STATUS
from services.common.signatures import smsflow_signature, twilio_signature
from services.sms_sender.dispatcher import Dispatcher
from services.sms_sender.fake_gateway import FakeGateway
from services.sms_sender.ledger import Ledger
from services.sms_sender.metrics import Metrics
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.publisher import MemoryPublisher
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.retries import RetryPolicy
from services.sms_sender.server import Server, WebhookConfig
from services.sms_sender.statuses import advance
from tests.unit.sms_sender.factories import entry

PUBLIC = "https://sender.example.com"
SECRET = "hook-secret"
TOKEN = "twilio-token"
KEY = "sms-key-0001"


class Setup:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        self.ledger = Ledger()
        sent = advance(entry(LedgerState.SENDING), LedgerState.SENT, provider_message_id="SM1")
        self.ledger.apply(sent, 2)
        self.ready = False
        self.dispatcher = Dispatcher(
            gateway=FakeGateway(),
            publisher=self.publisher,
            tracker=OffsetTracker(),
            public_url=PUBLIC,
            policy=RetryPolicy(),
            limiter=RateLimiter(0, 0),
            ambiguous_wait_s=1.0,
            ledger=self.ledger,
            rng=random.Random(1),
        )
        self.server = Server(
            WebhookConfig(PUBLIC, SECRET, TOKEN),
            self.dispatcher,
            self.publisher,
            Metrics(),
            {"+358451234567": "acme"}.get,
            lambda: self.ready,
        )


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[tuple[Setup, TestClient]]:  # type: ignore[type-arg]
    state = Setup()
    client = TestClient(TestServer(state.server.app()))
    await client.start_server()
    yield state, client
    await client.close()


def signed_json(payload: dict[str, object], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Smsflow-Signature": smsflow_signature(secret, body),
    }


def signed_form(
    path: str, params: dict[str, str], token: str = TOKEN
) -> tuple[str, dict[str, str]]:
    return urlencode(params), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, PUBLIC + path, params),
    }


@pytest.mark.asyncio
async def test_health_is_503_until_ready_and_metrics_are_served(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    assert (await client.get("/healthz")).status == 503
    state.ready = True
    answer = await client.get("/healthz")
    assert (answer.status, await answer.json()) == (200, {"ok": True})
    text = await (await client.get("/metrics")).text()
    assert "smsflow_sender_in_flight" in text


@pytest.mark.asyncio
async def test_a_signed_generic_delivery_callback_is_recorded_once(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "SM1", "status": "delivered", "error_code": None, "idempotency_key": KEY}
    body, headers = signed_json(payload)
    first = await client.post(f"/webhooks/status?ik={KEY}", data=body, headers=headers)
    again = await client.post(f"/webhooks/status?ik={KEY}", data=body, headers=headers)
    assert (first.status, (await first.json())["result"]) == (200, "recorded")
    assert (again.status, (await again.json())["result"]) == (200, "ignored")
    assert [e.status for e in state.publisher.of(SMS_STATUS.name)] == [SmsStatus.DELIVERED]


@pytest.mark.asyncio
async def test_a_twilio_callback_is_verified_over_the_public_url(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    path = f"/webhooks/status?ik={KEY}"
    params = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    body, headers = signed_form(path, params)
    answer = await client.post(path, data=body, headers=headers)
    assert answer.status == 200
    (event,) = state.publisher.of(SMS_STATUS.name)
    assert (event.status, event.error_code) == (SmsStatus.UNDELIVERED, "30003")


@pytest.mark.asyncio
async def test_bad_signatures_are_refused_and_nothing_is_published(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "SM1", "status": "delivered", "idempotency_key": KEY}
    body, headers = signed_json(payload, secret="wrong")
    assert (await client.post("/webhooks/status", data=body, headers=headers)).status == 403
    unsigned = {"Content-Type": "application/json"}
    assert (await client.post("/webhooks/status", data=body, headers=unsigned)).status == 403
    path = f"/webhooks/status?ik={KEY}"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    form, form_headers = signed_form(path, params, token="wrong")
    assert (await client.post(path, data=form, headers=form_headers)).status == 403
    # Signed for another URL (the ik changed on the way): refused as well.
    form, form_headers = signed_form(path, params)
    assert (await client.post(path + "x", data=form, headers=form_headers)).status == 403
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_a_report_for_an_unknown_message_asks_for_a_retry(setup) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    body, headers = signed_json({"id": "SM404", "status": "delivered"})
    answer = await client.post("/webhooks/status", data=body, headers=headers)
    assert answer.status == 503


@pytest.mark.asyncio
async def test_inbound_stop_is_published_for_the_account_of_the_receiving_number(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    params = {"MessageSid": "SM77", "From": "+358401111111", "To": "+358451234567", "Body": "STOP"}
    body, headers = signed_form("/webhooks/inbound", params)
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 200
    assert "<Response>" in await answer.text()  # TwiML: no auto-reply
    (event,) = state.publisher.of(SMS_INBOUND.name)
    assert isinstance(event, InboundSms)
    assert (event.key, event.body, event.provider_message_id) == (
        "acme:+358401111111",
        "STOP",
        "SM77",
    )


@pytest.mark.asyncio
async def test_inbound_to_an_unknown_number_is_dead_lettered_not_lost(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "in_1", "from": "+358401111111", "to": "+15550000000", "body": "STOP"}
    body, headers = signed_json(payload)
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 400
    assert "no account" in (await answer.json())["error"]
    assert state.publisher.of(SMS_INBOUND.name) == []
    (letter,) = state.publisher.of(DEAD_LETTERS.name)
    assert isinstance(letter, DeadLetter)
    assert (letter.service, letter.topic) == ("sms-sender", "webhooks/inbound")
    assert letter.value is not None
    assert "STOP" in letter.value


@pytest.mark.asyncio
async def test_malformed_webhook_bodies_are_rejected_with_a_reason(setup) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    body, headers = signed_json({"status": "delivered"})
    answer = await client.post("/webhooks/status", data=body, headers=headers)
    assert (answer.status, (await answer.json())["error"]) == (400, "id: missing")
    raw = b"{not json"
    headers = {"X-Smsflow-Signature": smsflow_signature(SECRET, raw)}
    assert (await client.post("/webhooks/inbound", data=raw, headers=headers)).status == 400
