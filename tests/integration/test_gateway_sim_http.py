"""The gateway simulator over real HTTP on loopback: idempotency, faults, Twilio API,
signed callbacks and inbound replies, checked against its own ledger."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.common.signatures import verify_smsflow_signature, verify_twilio_signature
from services.gateway_sim.app import build_app
from services.gateway_sim.faults import FaultConfig
from services.gateway_sim.settings import SimSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

REPO = Path(__file__).resolve().parents[2]
TO, FROM = "+358401234567", "+358451234567"
SID = "AC" + "1" * 32
TOKEN = "test-auth-token"
SECRET = "dev-webhook-secret"
TWILIO_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


@dataclass
class Received:
    path: str
    url: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver:
    """A stand-in for the sender's webhooks: records every POST."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(request.path, str(request.url), dict(request.headers), await request.read())
        )
        self.arrived.set()
        return web.Response(status=204 if request.path.startswith("/cb") else 200)

    async def wait_for(self, count: int, path: str = "", timeout: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(hits := [r for r in self.received if r.path.startswith(path)]) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return hits


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        rec.base_url = str(server.make_url("")).rstrip("/")
        yield rec


def _settings(receiver: Receiver, **overrides: Any) -> SimSettings:
    values: dict[str, Any] = {
        "port": 0,
        "seed": 1,
        "faults": FaultConfig(callback_delay_ms=20, timeout_delay_ms=1500),
        "inbound_webhook": receiver.url("/webhooks/inbound"),
        "twilio_auth_token": TOKEN,
        "webhook_secret": SECRET,
    }
    values.update(overrides)
    return SimSettings(**values)


@pytest_asyncio.fixture
async def sim(receiver: Receiver) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_app(_settings(receiver)), host="127.0.0.1")) as client:
        yield client


Client = TestClient[web.Request, web.Application]


def _message(body: str = "Hei Aino!", to: str = TO, **extra: Any) -> dict[str, Any]:
    return {"to": to, "from": FROM, "body": body, **extra}


async def _send(client: Client, key: str | None, payload: dict[str, Any], **kw: Any) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/v1/messages", json=payload, headers=headers, **kw)


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def _twilio(client: Client, form: dict[str, str], **kw: Any) -> Any:
    headers = {**kw.pop("headers", {})}
    auth = kw.pop("auth", _basic(SID, TOKEN))
    if auth is not None:
        headers["Authorization"] = auth
    return await client.post(TWILIO_PATH, data=form, headers=headers, **kw)


async def _ledger(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/_sim/messages")
    assert response.status == 200
    messages: list[dict[str, Any]] = await response.json()
    return messages


async def _configure(client: Client, **changes: Any) -> None:
    response = await client.post("/_sim/config", json=changes)
    assert response.status == 200, await response.text()


# --- generic API: Idempotency-Key semantics ------------------------------------------


async def test_replay_returns_first_response_and_ledger_has_one_message(sim: Client) -> None:
    first = await _send(sim, "key-1", _message())
    replay = await _send(sim, "key-1", _message())

    assert first.status == 201
    body = await first.json()
    assert re.fullmatch(r"msg_[0-9a-f]{32}", body["id"])
    assert body == {
        "id": body["id"],
        "status": "accepted",
        "to": TO,
        "from": FROM,
        "segments": 1,
        "encoding": "gsm7",
    }
    assert "Idempotent-Replayed" not in first.headers
    assert replay.status == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await replay.read() == await first.read()
    ledger = await _ledger(sim)
    assert [(m["id"], m["idempotency_key"], m["api"]) for m in ledger] == [
        (body["id"], "key-1", "http")
    ]
    assert ledger[0]["body"] == "Hei Aino!"


async def test_quoted_key_is_the_same_key(sim: Client) -> None:
    first = await _send(sim, '"key-q"', _message())
    replay = await _send(sim, "key-q", _message())
    assert (first.status, replay.headers.get("Idempotent-Replayed")) == (201, "true")


async def test_same_key_with_other_payload_is_422(sim: Client) -> None:
    assert (await _send(sim, "key-2", _message("one"))).status == 201
    mismatch = await _send(sim, "key-2", _message("two"))

    assert mismatch.status == 422
    assert (await mismatch.json())["error"] == "idempotency_key_reused"
    assert len(await _ledger(sim)) == 1


async def test_same_key_in_flight_is_409(sim: Client) -> None:
    await _configure(sim, latency_ms=400)
    first = asyncio.create_task(_send(sim, "key-3", _message()))
    await asyncio.sleep(0.1)

    second = await _send(sim, "key-3", _message())
    first_response = await first

    assert second.status == 409
    assert (await second.json())["error"] == "idempotency_key_in_flight"
    assert first_response.status == 201
    await _configure(sim, latency_ms=0)
    replay = await _send(sim, "key-3", _message())
    assert await replay.json() == await first_response.json()
    assert len(await _ledger(sim)) == 1


async def test_missing_key_is_400(sim: Client) -> None:
    response = await _send(sim, None, _message())

    assert response.status == 400
    assert (await response.json())["error"] == "idempotency_key_missing"
    assert await _ledger(sim) == []


async def test_invalid_json_is_400(sim: Client) -> None:
    response = await sim.post("/v1/messages", data=b"{nope", headers={"Idempotency-Key": "k"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_invalid_number_error_is_stored_and_replayed(sim: Client) -> None:
    first = await _send(sim, "key-4", _message(to="0401234567"))
    replay = await _send(sim, "key-4", _message(to="0401234567"))

    assert first.status == 400
    error = await first.json()
    assert error["code"] == 21211
    assert error["message"] == "The 'To' number 0401234567 is not a valid phone number."
    assert replay.status == 400
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await replay.json() == error
    assert await _ledger(sim) == []


async def test_throttle_is_429_with_retry_after_and_not_stored(sim: Client) -> None:
    await _configure(sim, throttle_rate=1.0, retry_after_s=2)
    throttled = await _send(sim, "key-5", _message())

    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "2"
    assert (await throttled.json())["code"] == 20429
    await _configure(sim, throttle_rate=0.0)
    retry = await _send(sim, "key-5", _message())
    assert retry.status == 201
    assert "Idempotent-Replayed" not in retry.headers  # processed fresh, not replayed
    assert len(await _ledger(sim)) == 1


async def test_failures_are_5xx_without_accepting(sim: Client) -> None:
    await _configure(sim, fail_rate=1.0)
    statuses = {(await _send(sim, f"key-f{i}", _message())).status for i in range(30)}

    assert statuses == {500, 503}
    assert await _ledger(sim) == []
    await _configure(sim, fail_rate=0.0)
    assert (await _send(sim, "key-f0", _message())).status == 201


async def test_timeout_after_accept_records_message_and_replay_returns_201(sim: Client) -> None:
    await _configure(sim, timeout_rate=1.0)
    with pytest.raises(asyncio.TimeoutError):
        await _send(sim, "key-6", _message(), timeout=aiohttp.ClientTimeout(total=0.3))

    ledger = await _ledger(sim)
    assert [m["idempotency_key"] for m in ledger] == ["key-6"]
    await _configure(sim, timeout_rate=0.0)
    replay = await _send(sim, "key-6", _message())
    assert replay.status == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (await replay.json())["id"] == ledger[0]["id"]
    assert len(await _ledger(sim)) == 1


async def test_error_after_accept_is_a_proxy_502_and_a_replay_returns_201(sim: Client) -> None:
    await _configure(sim, error_after_accept_rate=1.0)
    answer = await _send(sim, "key-502", _message())
    assert answer.status == 502
    assert "Bad Gateway" in await answer.text()
    await _configure(sim, error_after_accept_rate=0.0)

    replay = await _send(sim, "key-502", _message())
    assert (replay.status, replay.headers.get("Idempotent-Replayed")) == (201, "true")
    ledger = await _ledger(sim)
    assert [m["idempotency_key"] for m in ledger] == ["key-502"]  # accepted once
    assert (await replay.json())["id"] == ledger[0]["id"]


async def test_twilio_error_after_accept_still_creates_the_message(sim: Client) -> None:
    await _configure(sim, error_after_accept_rate=1.0)
    answer = await _twilio(sim, {"To": TO, "From": FROM, "Body": "Hei"})
    assert answer.status == 502
    await _configure(sim, error_after_accept_rate=0.0)
    again = await _twilio(sim, {"To": TO, "From": FROM, "Body": "Hei"})
    assert again.status == 201
    assert len(await _ledger(sim)) == 2  # no de-duplication: the resend is a second SMS


async def test_down_closes_provider_connections_without_an_answer(sim: Client) -> None:
    await _configure(sim, down=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _send(sim, "key-down", _message())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _twilio(sim, {"To": TO, "From": FROM, "Body": "Hei"})
    assert (await sim.get("/_sim/config")).status == 200  # the controls stay up
    await _configure(sim, down=False)

    assert (await _send(sim, "key-down", _message())).status == 201
    requests = await (await sim.get("/_sim/requests")).json()
    assert [r["status"] for r in requests] == [None, None, 201]  # seen, never answered
    assert len(await _ledger(sim)) == 1


async def test_opted_out_number_gets_21610(sim: Client) -> None:
    added = await sim.post("/_sim/opt-outs", json={"number": TO})
    assert added.status == 201

    response = await _send(sim, "key-7", _message())

    assert response.status == 400
    assert (await response.json())["code"] == 21610
    assert (await (await sim.get("/_sim/opt-outs")).json()) == [TO]
    assert (await sim.delete(f"/_sim/opt-outs/{TO}")).status == 200
    assert (await _send(sim, "key-8", _message())).status == 201


async def test_ucs2_segments_in_response(sim: Client) -> None:
    response = await _send(sim, "key-9", _message("Привет " * 11))
    body = await response.json()
    assert (body["segments"], body["encoding"]) == (2, "ucs2")


async def test_requests_ledger_lists_every_request(sim: Client) -> None:
    await _send(sim, "key-10", _message())
    await _send(sim, "key-10", _message())
    await _send(sim, None, _message())
    await sim.post("/nowhere")

    requests = await (await sim.get("/_sim/requests")).json()

    assert [(r["method"], r["path"], r["idempotency_key"], r["status"]) for r in requests] == [
        ("POST", "/v1/messages", "key-10", 201),
        ("POST", "/v1/messages", "key-10", 201),
        ("POST", "/v1/messages", None, 400),
        ("POST", "/nowhere", None, 404),
    ]
    assert all(r["received_at"].endswith("Z") for r in requests)


async def test_reset_clears_everything(sim: Client) -> None:
    await _configure(sim, latency_ms=5)
    await _send(sim, "key-11", _message())
    await sim.post("/_sim/opt-outs", json={"number": "+15550001111"})

    assert (await sim.post("/_sim/reset")).status == 200

    assert await _ledger(sim) == []
    assert await (await sim.get("/_sim/requests")).json() == []
    assert await (await sim.get("/_sim/opt-outs")).json() == []
    assert (await (await sim.get("/_sim/config")).json())["latency_ms"] == 0
    again = await _send(sim, "key-11", _message())
    assert "Idempotent-Replayed" not in again.headers


@pytest.mark.parametrize(
    "changes",
    [{"fail_rate": 2}, {"bogus": 1}, {"throttle_rate": "x"}, {"seed": "x"}, ["not", "a", "dict"]],
)
async def test_config_rejects_bad_values(sim: Client, changes: Any) -> None:
    response = await sim.post("/_sim/config", json=changes)
    assert response.status == 400


async def test_health(sim: Client) -> None:
    response = await sim.get("/_sim/health")
    assert (response.status, await response.json()) == (200, {"ok": True})


async def test_same_seed_same_faults(receiver: Receiver) -> None:
    async def statuses() -> list[int]:
        settings = _settings(
            receiver, seed=99, faults=FaultConfig(fail_rate=0.3, throttle_rate=0.3)
        )
        async with TestClient(TestServer(build_app(settings), host="127.0.0.1")) as client:
            return [(await _send(client, f"s{i}", _message())).status for i in range(40)]

    first, second = await statuses(), await statuses()
    assert first == second
    assert {201, 429} <= set(first)


# --- Twilio-shaped API ------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, _basic(SID, "wrong"), _basic("AC" + "2" * 32, TOKEN), "Basic !!!", "Bearer x"],
)
async def test_twilio_requires_basic_auth(sim: Client, auth: str | None) -> None:
    response = await _twilio(sim, {"To": TO, "From": FROM, "Body": "x"}, auth=auth)

    assert response.status == 401
    assert await response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert await _ledger(sim) == []


async def test_twilio_response_has_the_message_resource_shape(sim: Client) -> None:
    response = await _twilio(sim, {"To": TO, "From": FROM, "Body": "Hei €"})

    assert response.status == 201
    message = await response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    expected = {
        "account_sid": SID,
        "to": TO,
        "from": FROM,
        "body": "Hei €",
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "date_sent": None,
        "error_code": None,
        "error_message": None,
        "price": None,
        "api_version": "2010-04-01",
        "messaging_service_sid": None,
        "num_media": "0",
        "uri": f"/2010-04-01/Accounts/{SID}/Messages/{message['sid']}.json",
    }
    assert {k: message[k] for k in expected} == expected
    created = parsedate_to_datetime(message["date_created"])
    assert created.utcoffset() is not None
    assert message["date_created"].endswith("+0000")
    assert message["date_updated"] == message["date_created"]
    assert [
        (m["id"], m["api"], m["status"] in ("queued", "sent", "delivered"))
        for m in await _ledger(sim)
    ] == [(message["sid"], "twilio", True)]


async def test_twilio_does_not_deduplicate(sim: Client) -> None:
    form = {"To": TO, "From": FROM, "Body": "same"}
    headers = {"I-Idempotency-Key": "twilio-key"}
    first = await _twilio(sim, form, headers=headers)
    second = await _twilio(sim, form, headers=headers)
    third = await _twilio(sim, form)

    sids = [(await r.json())["sid"] for r in (first, second, third)]
    assert len(set(sids)) == 3
    ledger = await _ledger(sim)
    assert [m["id"] for m in ledger] == sids
    assert [m["idempotency_key"] for m in ledger] == ["twilio-key", "twilio-key", None]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "12345", "From": FROM, "Body": "x"}, 21211),
        ({"To": TO, "From": FROM}, 21602),
        ({"To": TO, "From": FROM, "Body": "x" * 1601}, 21617),
        ({"From": FROM, "Body": "x"}, 21604),
    ],
)
async def test_twilio_errors(sim: Client, form: dict[str, str], code: int) -> None:
    response = await _twilio(sim, form)

    assert response.status == 400
    error = await response.json()
    assert error == {
        "code": code,
        "message": error["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


async def test_twilio_throttle_is_20429_with_retry_after(sim: Client) -> None:
    await _configure(sim, throttle_rate=1.0)
    response = await _twilio(sim, {"To": TO, "From": FROM, "Body": "x"})

    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["code"] == 20429


# --- delivery callbacks ------------------------------------------------------------------


async def test_generic_callbacks_are_signed_and_ordered(sim: Client, receiver: Receiver) -> None:
    url = receiver.url("/cb/generic")
    response = await _send(sim, "key-cb", _message(status_callback=url))
    message_id = (await response.json())["id"]

    sent, final = await receiver.wait_for(2, "/cb/")

    for hit in (sent, final):
        signature = hit.headers["X-Smsflow-Signature"]
        assert verify_smsflow_signature(SECRET, hit.body, signature)
        assert hit.headers["Content-Type"] == "application/json"
    payloads = [json.loads(hit.body) for hit in (sent, final)]
    assert [(p["id"], p["status"], p["error_code"]) for p in payloads] == [
        (message_id, "sent", None),
        (message_id, "delivered", None),
    ]
    assert all(p["idempotency_key"] == "key-cb" and p["to"] == TO for p in payloads)
    assert all(p["occurred_at"].endswith("Z") for p in payloads)
    assert (await _ledger(sim))[0]["status"] == "delivered"


async def test_undelivered_callbacks_carry_a_carrier_error(sim: Client, receiver: Receiver) -> None:
    await _configure(sim, undelivered_rate=1.0)
    await _send(sim, "key-und", _message(status_callback=receiver.url("/cb/u")))

    _, final = await receiver.wait_for(2, "/cb/")

    payload = json.loads(final.body)
    assert payload["status"] == "undelivered"
    assert payload["error_code"] in (30003, 30006)
    ledger = await _ledger(sim)
    assert (ledger[0]["status"], ledger[0]["error_code"]) == ("undelivered", payload["error_code"])


async def test_twilio_callbacks_are_signed_like_twilio(sim: Client, receiver: Receiver) -> None:
    await _configure(sim, undelivered_rate=1.0)
    callback = receiver.url("/cb/twilio?ik=abc")
    response = await _twilio(sim, {"To": TO, "From": FROM, "Body": "x", "StatusCallback": callback})
    sid = (await response.json())["sid"]

    sent, final = await receiver.wait_for(2, "/cb/")

    for hit in (sent, final):
        params = hit.form()
        assert hit.url == callback
        assert verify_twilio_signature(TOKEN, callback, params, hit.headers["X-Twilio-Signature"])
        assert not verify_twilio_signature(
            "other", callback, params, hit.headers["X-Twilio-Signature"]
        )
        assert params["MessageSid"] == params["SmsSid"] == sid
        assert (params["From"], params["To"], params["AccountSid"]) == (FROM, TO, SID)
        assert params["ApiVersion"] == "2010-04-01"
    assert sent.form()["MessageStatus"] == sent.form()["SmsStatus"] == "sent"
    assert "ErrorCode" not in sent.form()
    assert final.form()["MessageStatus"] == "undelivered"
    assert final.form()["ErrorCode"] in ("30003", "30006")
    tokens = {hit.headers["I-Twilio-Idempotency-Token"] for hit in (sent, final)}
    assert len(tokens) == 2


@pytest.mark.parametrize(("undelivered_rate", "final"), [(0.0, "delivered"), (1.0, "undelivered")])
async def test_status_progresses_without_a_callback_url(
    sim: Client, undelivered_rate: float, final: str
) -> None:
    await _configure(sim, undelivered_rate=undelivered_rate)
    await _send(sim, "no-cb", _message())
    await _twilio(sim, {"To": TO, "From": FROM, "Body": "x"})

    async with asyncio.timeout(5):
        while {m["status"] for m in await _ledger(sim)} != {final}:
            await asyncio.sleep(0.02)


async def test_unreachable_callback_never_hurts_the_server(sim: Client) -> None:
    dead = "http://127.0.0.1:9/cb"  # discard port: nothing listens
    for i in range(5):
        assert (await _send(sim, f"dead-{i}", _message(status_callback=dead))).status == 201
    await asyncio.sleep(0.3)

    assert (await sim.get("/_sim/health")).status == 200
    assert len(await _ledger(sim)) == 5


# --- inbound replies ---------------------------------------------------------------------


async def test_inbound_stop_is_forwarded_and_later_sends_get_21610(
    sim: Client, receiver: Receiver
) -> None:
    response = await sim.post("/_sim/inbound", json={"from": TO, "to": FROM, "body": " Stop "})

    assert response.status == 202
    assert (await response.json())["forwarded"] is True
    assert (await response.json())["status"] == 200
    (hit,) = await receiver.wait_for(1, "/webhooks/inbound")
    assert verify_smsflow_signature(SECRET, hit.body, hit.headers["X-Smsflow-Signature"])
    forwarded = json.loads(hit.body)
    assert re.fullmatch(r"in_[0-9a-f]{32}", forwarded["id"])
    assert (forwarded["from"], forwarded["to"], forwarded["body"]) == (TO, FROM, " Stop ")
    assert forwarded["received_at"].endswith("Z")

    blocked = await _send(sim, "after-stop", _message())
    assert (blocked.status, (await blocked.json())["code"]) == (400, 21610)
    blocked_twilio = await _twilio(sim, {"To": TO, "From": FROM, "Body": "x"})
    assert (await blocked_twilio.json())["code"] == 21610

    await sim.post("/_sim/inbound", json={"from": TO, "to": FROM, "body": "START"})
    assert (await _send(sim, "after-start", _message())).status == 201


async def test_inbound_in_twilio_mode_is_a_signed_form(receiver: Receiver) -> None:
    settings = _settings(receiver, inbound_api="twilio")
    async with TestClient(TestServer(build_app(settings), host="127.0.0.1")) as client:
        response = await client.post("/_sim/inbound", json={"from": TO, "to": FROM, "body": "hi"})
        assert response.status == 202

    (hit,) = await receiver.wait_for(1, "/webhooks/inbound")
    params = hit.form()
    url = receiver.url("/webhooks/inbound")
    assert verify_twilio_signature(TOKEN, url, params, hit.headers["X-Twilio-Signature"])
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert {k: params[k] for k in ("From", "To", "Body", "AccountSid")} == {
        "From": TO,
        "To": FROM,
        "Body": "hi",
        "AccountSid": settings.twilio_account_sid,
    }


async def test_inbound_with_unreachable_webhook_is_502(receiver: Receiver) -> None:
    settings = _settings(receiver, inbound_webhook="http://127.0.0.1:9/in")
    async with TestClient(TestServer(build_app(settings), host="127.0.0.1")) as client:
        response = await client.post("/_sim/inbound", json={"from": TO, "to": FROM, "body": "STOP"})
        assert response.status == 502
        body = await response.json()
        assert body["forwarded"] is False
        assert body["reason"]
        # The carrier still honours the STOP.
        assert (await (await client.get("/_sim/opt-outs")).json()) == [TO]


async def test_inbound_rejects_bad_payload(sim: Client) -> None:
    response = await sim.post("/_sim/inbound", json={"from": TO})
    assert response.status == 400


# --- the real process ------------------------------------------------------------------


@pytest.fixture
def sim_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "SMSFLOW_SIM_SEED": "5", "SMSFLOW_SIM_CALLBACK_DELAY_MS": "10"}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway_sim", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:  # never hang on a silent process
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "gateway-sim printed no start-up line"
        line = process.stdout.readline()
        match = re.fullmatch(r"gateway-sim listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_process_serves_and_stops_cleanly_on_sigterm(
    sim_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, base = sim_process
    async with aiohttp.ClientSession(base) as session:
        async with session.get("/_sim/health") as health:
            assert health.status == 200
        async with session.post(
            "/v1/messages", json=_message(), headers={"Idempotency-Key": "p-1"}
        ) as sent:
            assert sent.status == 201
        async with session.get("/_sim/messages") as ledger:
            assert len(await ledger.json()) == 1

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 10) == 0
