"""Webhooks, health and metrics over HTTP, with an in-memory publisher."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from schemas.dead_letters import DeadLetter
from schemas.ledger import LedgerState
from schemas.sms import InboundSms, NumberOptOut, OptOutSource, SmsStatus
from schemas.topics import DEAD_LETTERS, OPT_OUTS, SMS_INBOUND, SMS_STATUS
from services.common.signatures import smsflow_signature, twilio_signature
from services.sms_sender.dispatcher import Dispatcher
from services.sms_sender.fake_gateway import FakeGateway
from services.sms_sender.ledger import Ledger
from services.sms_sender.metrics import Metrics
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.publisher import MemoryPublisher
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.reply_ids import RecentIds
from services.sms_sender.retries import RetryPolicy
from services.sms_sender.server import Server, WebhookConfig
from services.sms_sender.statuses import advance
from tests.unit.sms_sender.factories import ACCOUNTS, ACME, PHONE, entry

PUBLIC = "https://sender.example.com"
SECRET = "hook-secret"
TOKEN = "twilio-token"
KEY = "sms-key-0001"


class FailingPublisher(MemoryPublisher):
    """Kafka away: every write raises (or, with ``hang``, never comes back)."""

    def __init__(self, hang: bool = False) -> None:
        super().__init__()
        self.hang = hang

    async def _fail(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        raise ConnectionError("broker unreachable")

    async def inbound(self, event: Any) -> None:
        await self._fail()

    async def opt_outs(self, events: Any) -> None:
        await self._fail()

    async def ledger(self, entry: Any, partition: int) -> None:
        await self._fail()

    async def dead_letter(self, letter: Any) -> None:
        await self._fail()


class Setup:
    def __init__(self, api: str = "http", publisher: MemoryPublisher | None = None) -> None:
        self.publisher = publisher or MemoryPublisher()
        self.ledger = Ledger()
        sent = advance(entry(LedgerState.SENDING), LedgerState.SENT, provider_message_id="SM1")
        self.ledger.apply(sent, 2)
        self.ready = False
        self.reply_ids = RecentIds(100)
        self.reply_ids_ready = True
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
        secret = TOKEN if api == "twilio" else SECRET
        self.server = Server(
            WebhookConfig(PUBLIC, api, secret, publish_timeout_s=0.2),  # type: ignore[arg-type]
            self.dispatcher,
            self.publisher,
            Metrics(),
            lambda: ACCOUNTS,
            lambda: self.ready,
            self.reply_ids,
            lambda: self.reply_ids_ready,
        )


async def _client(state: Setup) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(state.server.app()))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[tuple[Setup, TestClient]]:  # type: ignore[type-arg]
    state = Setup()
    client = await _client(state)
    yield state, client
    await client.close()


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[tuple[Setup, TestClient]]:  # type: ignore[type-arg]
    state = Setup("twilio")
    client = await _client(state)
    yield state, client
    await client.close()


def signed_json(
    payload: dict[str, object], secret: str = SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Smsflow-Signature": smsflow_signature(secret, body, timestamp),
    }


async def post_reply(client: TestClient, payload: dict[str, object]) -> ClientResponse:
    """A signed JSON reply posted to the generic inbound webhook."""
    body, headers = signed_json(payload)
    return await client.post("/webhooks/inbound", data=body, headers=headers)


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
async def test_a_twilio_callback_is_verified_over_the_public_url(twilio) -> None:  # type: ignore[no-untyped-def]
    state, client = twilio
    path = f"/webhooks/status?ik={KEY}"
    params = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    body, headers = signed_form(path, params)
    answer = await client.post(path, data=body, headers=headers)
    assert answer.status == 200
    (event,) = state.publisher.of(SMS_STATUS.name)
    assert (event.status, event.error_code) == (SmsStatus.UNDELIVERED, "30003")


@pytest.mark.asyncio
async def test_bad_generic_signatures_are_refused_and_nothing_is_published(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "SM1", "status": "delivered", "idempotency_key": KEY}
    body, headers = signed_json(payload, secret="wrong")
    assert (await client.post("/webhooks/status", data=body, headers=headers)).status == 403
    unsigned = {"Content-Type": "application/json"}
    assert (await client.post("/webhooks/status", data=body, headers=unsigned)).status == 401
    body, headers = signed_json(payload, timestamp=1)  # signed in 1970: stale
    assert (await client.post("/webhooks/status", data=body, headers=headers)).status == 403
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_bad_twilio_signatures_are_refused_and_nothing_is_published(twilio) -> None:  # type: ignore[no-untyped-def]
    state, client = twilio
    path = f"/webhooks/status?ik={KEY}"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    form, form_headers = signed_form(path, params, token="wrong")
    assert (await client.post(path, data=form, headers=form_headers)).status == 403
    # Signed for another URL (the ik changed on the way): refused as well.
    form, form_headers = signed_form(path, params)
    assert (await client.post(path + "x", data=form, headers=form_headers)).status == 403
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_only_the_configured_apis_scheme_is_accepted(setup, twilio) -> None:  # type: ignore[no-untyped-def]
    generic_state, generic = setup
    twilio_state, twilio_client = twilio
    params = {"MessageSid": "SM5", "From": PHONE, "To": ACME, "Body": "START"}
    form, form_headers = signed_form("/webhooks/inbound", params)
    answer = await generic.post("/webhooks/inbound", data=form, headers=form_headers)
    assert answer.status == 401
    payload = {"id": "in_5", "from": PHONE, "to": ACME, "body": "START"}
    body, headers = signed_json(payload, secret=TOKEN)  # even with the right key
    answer = await twilio_client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 401
    assert generic_state.publisher.records == twilio_state.publisher.records == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "header", ["t=1700000000,v1=\u00e4\u00f6", "\u00c4\u00d6", "t=\u0661\u0662,v1=00", "x"]
)
async def test_non_ascii_or_malformed_signature_headers_get_401(setup, header: str) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    body = json.dumps({"id": "in_1", "from": PHONE, "to": ACME, "body": "START"}).encode()
    headers = {"Content-Type": "application/json", "X-Smsflow-Signature": header}
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 401
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_a_non_ascii_twilio_signature_gets_401(twilio) -> None:  # type: ignore[no-untyped-def]
    state, client = twilio
    form, headers = signed_form("/webhooks/inbound", {"MessageSid": "SM1", "From": PHONE})
    headers["X-Twilio-Signature"] = "\u00c4\u00d6=="
    assert (await client.post("/webhooks/inbound", data=form, headers=headers)).status == 401
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_a_report_for_an_unknown_message_asks_for_a_retry(setup) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    body, headers = signed_json({"id": "SM404", "status": "delivered"})
    answer = await client.post("/webhooks/status", data=body, headers=headers)
    assert answer.status == 503


@pytest.mark.asyncio
async def test_inbound_stop_is_published_for_the_account_of_the_receiving_number(twilio) -> None:  # type: ignore[no-untyped-def]
    state, client = twilio
    params = {"MessageSid": "SM77", "From": PHONE, "To": ACME, "Body": "STOP"}
    body, headers = signed_form("/webhooks/inbound", params)
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 200
    assert "<Response>" in await answer.text()  # TwiML: no auto-reply
    (event,) = state.publisher.of(SMS_INBOUND.name)
    assert isinstance(event, InboundSms)
    assert (event.key, event.body, event.provider_message_id) == (f"acme:{PHONE}", "STOP", "SM77")


@pytest.mark.asyncio
async def test_a_replayed_reply_publishes_nothing_new(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "in_9", "from": PHONE, "to": ACME, "body": "START"}
    for _ in range(3):
        answer = await post_reply(client, payload)
        assert answer.status == 200
    assert (await answer.json())["result"] == "duplicate"
    (event,) = state.publisher.of(SMS_INBOUND.name)
    assert event.provider_message_id == "in_9"


@pytest.mark.asyncio
async def test_a_reply_known_from_before_the_start_publishes_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    state.reply_ids.add("in_old")
    answer = await post_reply(
        client, {"message_id": "in_old", "from": PHONE, "to": ACME, "body": "x"}
    )
    assert (answer.status, (await answer.json())["result"]) == (200, "duplicate")
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_replies_wait_with_503_until_earlier_ids_are_read(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    state.reply_ids_ready = False
    body, headers = signed_json({"id": "in_1", "from": PHONE, "to": ACME, "body": "STOP"})
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 503
    assert state.publisher.records == []
    state.reply_ids_ready = True
    answer = await client.post("/webhooks/inbound", data=body, headers=headers)
    assert answer.status == 200
    assert len(state.publisher.of(SMS_INBOUND.name)) == 1


@pytest.mark.asyncio
async def test_a_reply_without_a_provider_id_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    answer = await post_reply(client, {"from": PHONE, "to": ACME, "body": "START"})
    assert (answer.status, (await answer.json())["error"]) == (400, "id: missing")
    assert state.publisher.records == []


@pytest.mark.asyncio
async def test_a_stop_to_an_unknown_number_opts_the_sender_out_for_every_account(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "in_1", "from": PHONE, "to": "+15550000000", "body": "Stop."}
    answer = await post_reply(client, payload)
    assert (answer.status, (await answer.json())["result"]) == (200, "opted_out")
    assert state.publisher.of(SMS_INBOUND.name) == []
    opt_outs = state.publisher.of(OPT_OUTS.name)
    assert [e.key for e in opt_outs] == [f"acme:{PHONE}", f"beta:{PHONE}"]
    for event in opt_outs:
        assert isinstance(event, NumberOptOut)
        assert (event.opted_out, event.source, event.keyword) == (True, OptOutSource.REPLY, "stop")
        assert event.provider_message_id == "in_1"


@pytest.mark.asyncio
async def test_an_accounts_own_word_to_an_unknown_number_opts_out_of_that_account(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "in_2", "from": PHONE, "to": "+15550000000", "body": "LOPETA"}
    assert (await post_reply(client, payload)).status == 200
    (event,) = state.publisher.of(OPT_OUTS.name)
    assert (event.key, event.keyword) == (f"acme:{PHONE}", "lopeta")


@pytest.mark.asyncio
async def test_other_text_to_an_unknown_number_is_kept_and_answered_200(setup) -> None:  # type: ignore[no-untyped-def]
    state, client = setup
    payload = {"id": "in_3", "from": PHONE, "to": "+15550000000", "body": "START"}
    answer = await post_reply(client, payload)
    assert (answer.status, (await answer.json())["result"]) == (200, "unknown_to")
    assert state.publisher.of(SMS_INBOUND.name) == state.publisher.of(OPT_OUTS.name) == []
    (letter,) = state.publisher.of(DEAD_LETTERS.name)
    assert isinstance(letter, DeadLetter)
    assert (letter.service, letter.topic) == ("sms-sender", "webhooks/inbound")
    assert letter.value is not None
    assert "START" in letter.value


@pytest.mark.asyncio
@pytest.mark.parametrize("hang", [False, True])
async def test_webhooks_answer_503_when_kafka_cannot_take_them(hang: bool) -> None:
    state = Setup(publisher=FailingPublisher(hang=hang))
    client = await _client(state)
    try:
        answer = await post_reply(client, {"id": "in_1", "from": PHONE, "to": ACME, "body": "STOP"})
        assert (answer.status, answer.headers["Retry-After"]) == (503, "5")
        payload = {"id": "SM1", "status": "delivered", "idempotency_key": KEY}
        body, headers = signed_json(payload)
        answer = await client.post(f"/webhooks/status?ik={KEY}", data=body, headers=headers)
        assert answer.status == 503
        # Not remembered as published: the provider's retry is taken once Kafka is back.
        assert "in_1" not in state.reply_ids
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_malformed_webhook_bodies_are_rejected_with_a_reason(setup) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    body, headers = signed_json({"status": "delivered"})
    answer = await client.post("/webhooks/status", data=body, headers=headers)
    assert (answer.status, (await answer.json())["error"]) == (400, "id: missing")
    raw = b"{not json"
    headers = {"X-Smsflow-Signature": smsflow_signature(SECRET, raw)}
    assert (await client.post("/webhooks/inbound", data=raw, headers=headers)).status == 400


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("content_type", "body", "signature", "status"),
    [
        ("application/x-www-form-urlencoded", b"\xff\xfe=\xff&%ZZ=1", "AAAA", 403),
        ("multipart/form-data; boundary=xx", b"--xx\r\ngarbage", "AAAA", 403),
        ("multipart/form-data", b"nothing", None, 401),
    ],
)
async def test_an_unreadable_twilio_body_is_refused_as_unsigned_or_badly_signed(  # type: ignore[no-untyped-def]
    twilio, content_type: str, body: bytes, signature: str | None, status: int
) -> None:
    state, client = twilio
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    assert (await client.post("/webhooks/inbound", data=body, headers=headers)).status == status
    assert state.publisher.records == []
