"""The adapters against recorded provider responses, served by a local aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from services.sms_sender.gateway import Accepted, Ambiguous, Refused, Rejected
from services.sms_sender.http_client import make_session
from services.sms_sender.http_gateway import HttpGateway
from services.sms_sender.twilio_gateway import TwilioGateway
from tests.unit.sms_sender.factories import request

SID = "AC" + "1" * 32
TOKEN = "secret-token"
CALLBACK = "http://127.0.0.1:8026/webhooks/status?ik=sms-key-0001"

# Recorded Twilio answers (api.twilio.com 2010-04-01 shapes).
TWILIO_CREATED = {
    "account_sid": SID,
    "api_version": "2010-04-01",
    "body": "Hei! Tervetuloa.",
    "date_created": "Fri, 27 Nov 2026 10:00:00 +0000",
    "date_sent": None,
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+358451234567",
    "num_segments": "2",
    "price": None,
    "sid": "SM5f2c7b0e8f0d4d9fa1b3c6d7e8f90123",
    "status": "queued",
    "to": "+358400000001",
    "uri": f"/2010-04-01/Accounts/{SID}/Messages/SM5f2c7b0e8f0d4d9fa1b3c6d7e8f90123.json",
}


def twilio_error(code: int, status: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class Recorder:
    """Answers each request with the next scripted (status, body, headers, delay)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any], dict[str, str], float]] = []
        self.seen: list[tuple[str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body: Any
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = dict(await request.post())
        self.seen.append((request.path, dict(request.headers), body))
        status, payload, headers, delay = self.script.pop(0)
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(payload, status=status, headers=headers)


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", recorder
    await runner.cleanup()


def _session(timeout_s: float = 2.0):  # type: ignore[no-untyped-def]
    return make_session(max_connections=4, connect_timeout_s=1.0, request_timeout_s=timeout_s)


@pytest.mark.asyncio
async def test_twilio_sends_form_fields_with_basic_auth(provider: tuple[str, Recorder]) -> None:
    url, recorder = provider
    recorder.script.append((201, TWILIO_CREATED, {}, 0))
    gateway = TwilioGateway(url, SID, TOKEN, _session())
    try:
        outcome = await gateway.send(request(1), CALLBACK)
    finally:
        await gateway.close()
    assert outcome == Accepted("SM5f2c7b0e8f0d4d9fa1b3c6d7e8f90123", 2)
    path, headers, form = recorder.seen[0]
    assert path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    scheme, credentials = headers["Authorization"].split(" ")
    assert (scheme, base64.b64decode(credentials).decode()) == ("Basic", f"{SID}:{TOKEN}")
    assert form == {
        "To": "+358400000001",
        "From": "+358451234567",
        "Body": "Hei! Tervetuloa.",
        "StatusCallback": CALLBACK,
    }


@pytest.mark.parametrize(
    ("status", "payload", "headers", "expected"),
    [
        (
            400,
            twilio_error(21211, 400, "The 'To' number +1 is not a valid phone number."),
            {},
            Rejected("21211", 400, "The 'To' number +1 is not a valid phone number."),
        ),
        (
            400,
            twilio_error(21610, 400, "Attempt to send to unsubscribed recipient"),
            {},
            Rejected("21610", 400, "Attempt to send to unsubscribed recipient"),
        ),
        (401, twilio_error(20003, 401, "Authenticate"), {}, Rejected("20003", 401, "Authenticate")),
        (
            429,
            twilio_error(20429, 429, "Too Many Requests"),
            {"Retry-After": "2"},
            Refused("throttled", 429, "20429", 2.0),
        ),
        (
            400,
            twilio_error(21611, 400, "This 'From' number has exceeded the queued messages limit"),
            {},
            Refused("sender_queue_full", 400, "21611", None),
        ),
        (
            500,
            twilio_error(20500, 500, "An internal server error has occurred"),
            {},
            Ambiguous("http_500", 500, "20500", None),  # Twilio may have created it
        ),
        (
            503,
            twilio_error(20503, 503, "Service temporarily unavailable"),
            {},
            Ambiguous("http_503", 503, "20503", None),
        ),
    ],
)
@pytest.mark.asyncio
async def test_twilio_errors_map_to_outcomes(
    provider: tuple[str, Recorder],
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str],
    expected: object,
) -> None:
    url, recorder = provider
    recorder.script.append((status, payload, headers, 0))
    gateway = TwilioGateway(url, SID, TOKEN, _session())
    try:
        assert await gateway.send(request(1), CALLBACK) == expected
    finally:
        await gateway.close()


@pytest.mark.asyncio
async def test_generic_api_sends_json_with_the_idempotency_key(
    provider: tuple[str, Recorder],
) -> None:
    url, recorder = provider
    recorder.script.append((201, {"id": "msg_1", "status": "accepted", "segments": 1}, {}, 0))
    recorder.script.append((409, {"error": "idempotency_key_in_flight", "code": 409}, {}, 0))
    recorder.script.append((422, {"error": "idempotency_key_reused", "code": 422}, {}, 0))
    gateway = HttpGateway(url, _session())
    try:
        assert await gateway.send(request(1), CALLBACK) == Accepted("msg_1", 1)
        assert await gateway.send(request(1), CALLBACK) == Refused("key_in_flight", 409, "409")
        rejected = await gateway.send(request(1), CALLBACK)
    finally:
        await gateway.close()
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "idempotency_key_reused"
    path, headers, body = recorder.seen[0]
    assert path == "/v1/messages"
    assert headers["Idempotency-Key"] == "sms-key-0001"
    assert body == {
        "to": "+358400000001",
        "from": "+358451234567",
        "body": "Hei! Tervetuloa.",
        "status_callback": CALLBACK,
    }


@pytest.mark.asyncio
async def test_an_answer_that_never_comes_is_ambiguous(provider: tuple[str, Recorder]) -> None:
    url, recorder = provider
    recorder.script.append((201, TWILIO_CREATED, {}, 1.0))
    gateway = TwilioGateway(url, SID, TOKEN, _session(timeout_s=0.2))
    try:
        assert await gateway.send(request(1), CALLBACK) == Ambiguous("timeout")
    finally:
        await gateway.close()
    assert len(recorder.seen) == 1  # the request did leave


@pytest.mark.asyncio
async def test_a_refused_connection_is_not_ambiguous() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    gateway = HttpGateway(f"http://127.0.0.1:{port}", _session())
    try:
        outcome = await gateway.send(request(1), CALLBACK)
    finally:
        await gateway.close()
    assert isinstance(outcome, Refused)
    assert outcome.reason == "connection_failed"


@pytest.mark.asyncio
async def test_a_2xx_without_an_id_is_ambiguous(provider: tuple[str, Recorder]) -> None:
    url, recorder = provider
    recorder.script.append((201, {"status": "accepted"}, {}, 0))
    gateway = HttpGateway(url, _session())
    try:
        assert isinstance(await gateway.send(request(1), CALLBACK), Ambiguous)
    finally:
        await gateway.close()
    assert json.dumps(recorder.seen[0][2])  # the body was sent as JSON
