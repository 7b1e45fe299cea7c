"""The sender's webhooks against the real broker (DESIGN A8): forged, unsigned, stale,
replayed and wrongly-schemed requests publish nothing; a STOP to an unknown number still
opts it out; without Kafka the answer is 503; without explicit secrets no start."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError

from schemas.definitions import Account
from schemas.sms import InboundSms, NumberOptOut, OptOutSource
from schemas.topics import OPT_OUTS
from services.common.settings import KafkaSettings
from services.common.signatures import smsflow_signature, twilio_signature
from services.sms_sender.async_kafka import make_producer
from services.sms_sender.metrics import Metrics
from services.sms_sender.publisher import KafkaPublisher
from services.sms_sender.server import Server, WebhookConfig
from tests.integration.sms_sender.processes import (
    WEBHOOK_SECRETS,
    Sender,
    Simulator,
    free_port,
    sender_and_simulator,
)
from tests.integration.sms_sender.traffic import inbound_events
from tests.processes import clean_env, run_once
from tests.samples import design_documents
from tests.support import fresh_settings, read_models

pytestmark = pytest.mark.integration

SECRET = WEBHOOK_SECRETS["SMSFLOW_WEBHOOK_SECRET"]
ACME = "+358451234567"  # acme's sender number (tests.samples)
UNKNOWN_TO = "+15550001111"
BETA = {
    "apiVersion": "smsflow/v1",
    "kind": "Account",
    "metadata": {"id": "beta"},
    "spec": {"sms_access": True, "sender": "+15551230000", "opt_out_keywords": ["LOPETA"]},
}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str) -> Iterator[tuple[KafkaSettings, Simulator, Sender]]:
    settings = fresh_settings(kafka_bootstrap)
    with sender_and_simulator(settings, "http", [*design_documents(), BETA]) as (sim, sender):
        yield settings, sim, sender


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def reply(
    sender: Sender,
    payload: dict[str, str],
    secret: str = SECRET,
    signed_at: int | None = None,
) -> tuple[int, dict[str, object]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Smsflow-Signature": smsflow_signature(secret, body, signed_at),
    }
    return post(f"{sender.url}/webhooks/inbound", body, headers)


def published_ids(settings: KafkaSettings) -> list[str | None]:
    """Provider ids of everything on ``sms-inbound`` and ``opt-outs``."""
    inbound = [e.provider_message_id for e in inbound_events(settings) if isinstance(e, InboundSms)]
    opted = [e.provider_message_id for e in read_models(settings, OPT_OUTS, NumberOptOut)]
    return inbound + opted


def test_forged_unsigned_stale_and_wrongly_schemed_replies_publish_nothing(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, _, sender = stack
    start = {"from": "+358401110001", "to": ACME, "body": "START"}
    assert reply(sender, {**start, "id": "forged"}, secret="guessed-secret")[0] == 403
    stale_at = int(time.time()) - 301
    assert reply(sender, {**start, "id": "stale"}, signed_at=stale_at)[0] == 403
    body = json.dumps({**start, "id": "unsigned"}).encode()
    assert (
        post(f"{sender.url}/webhooks/inbound", body, {"Content-Type": "application/json"})[0] == 401
    )
    # Twilio's scheme, correctly signed with the Twilio token, on a sender configured for http.
    params = {"MessageSid": "twilio-scheme", "From": "+358401110001", "To": ACME, "Body": "START"}
    url = f"{sender.url}/webhooks/inbound"
    token = WEBHOOK_SECRETS["SMSFLOW_TWILIO_AUTH_TOKEN"]
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, url, params),
    }
    assert post(url, urlencode(params).encode(), headers)[0] == 401
    # Non-ASCII in the header: refused as unsigned, not a server error.
    body = json.dumps({**start, "id": "non-ascii"}).encode()
    odd = {"Content-Type": "application/json", "X-Smsflow-Signature": "t=1,v1=ÄÖ"}
    assert post(url, body, odd)[0] == 401
    # A good reply after them: once it is on the topic, the refused ones would be too.
    assert reply(sender, {**start, "id": "genuine"}) == (200, {"ok": True, "result": "recorded"})
    published = published_ids(settings)
    assert published.count("genuine") == 1
    refused = {"forged", "stale", "unsigned", "twilio-scheme", "non-ascii"}
    assert refused.isdisjoint(published)


def test_a_replayed_reply_publishes_nothing_new_even_after_a_restart(
    stack: tuple[KafkaSettings, Simulator, Sender], tmp_path: Path
) -> None:
    settings, _, sender = stack
    stop = {"id": "in-replayed", "from": "+358401110002", "to": ACME, "body": "STOP"}
    assert reply(sender, stop)[1]["result"] == "recorded"
    assert reply(sender, stop)[1]["result"] == "duplicate"
    # Restarted, with its secret from a file named as documented instead of the environment.
    assert sender.stop() == 0
    (tmp_path / "webhook_secret").write_text(SECRET + "\n")
    sender.env.pop("SMSFLOW_WEBHOOK_SECRET")
    sender.env["SMSFLOW_SECRETS_DIR"] = str(tmp_path)
    sender.start()
    deadline = time.monotonic() + 30
    while (answer := reply(sender, stop))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.5)  # the ids of earlier replies are still being read back
    assert answer == (200, {"ok": True, "result": "duplicate"})
    assert published_ids(settings).count("in-replayed") == 1


def test_a_stop_to_an_unknown_number_opts_the_number_out_of_every_account(
    stack: tuple[KafkaSettings, Simulator, Sender],
) -> None:
    settings, sim, _ = stack
    # Through the simulator: it signs the forward with the shared secret.
    answer = sim.post("/_sim/inbound", {"from": "+358401112244", "to": UNKNOWN_TO, "body": "Stop."})
    assert (answer["forwarded"], answer["status"]) == (True, 200)
    opt_outs = [
        e for e in read_models(settings, OPT_OUTS, NumberOptOut) if e.number == "+358401112244"
    ]
    assert sorted(e.key for e in opt_outs) == ["acme:+358401112244", "beta:+358401112244"]
    assert all(e.opted_out and e.source is OptOutSource.REPLY for e in opt_outs)
    assert {e.provider_message_id for e in opt_outs} == {answer["id"]}
    # An account's own word opts out of that account only.
    answer = sim.post(
        "/_sim/inbound", {"from": "+358401112255", "to": UNKNOWN_TO, "body": "lopeta"}
    )
    assert answer["status"] == 200
    opted = [
        e.key for e in read_models(settings, OPT_OUTS, NumberOptOut) if e.number == "+358401112255"
    ]
    assert opted == ["beta:+358401112255"]


@pytest.mark.asyncio
async def test_webhooks_answer_503_when_kafka_is_unreachable() -> None:
    dead = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    producer = make_producer(dead)
    with contextlib.suppress(KafkaConnectionError):  # nothing listens: writes wait, then fail
        await producer.start()
    accounts = [Account.model_validate(design_documents()[0]), Account.model_validate(BETA)]
    server = Server(
        WebhookConfig("http://127.0.0.1", "http", SECRET, publish_timeout_s=1.0),
        dispatcher=None,  # type: ignore[arg-type]  # not reached by inbound replies
        publisher=KafkaPublisher(producer, dead, "test"),
        metrics=Metrics(),
        accounts=lambda: accounts,
        ready=lambda: True,
    )
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    try:
        for to in (ACME, UNKNOWN_TO):  # an InboundSms, then NumberOptOuts
            body = json.dumps({"id": f"in-{to}", "from": "+358401110003", "to": to, "body": "STOP"})
            headers = {"X-Smsflow-Signature": smsflow_signature(SECRET, body.encode())}
            answer = await client.post("/webhooks/inbound", data=body, headers=headers)
            assert (answer.status, answer.headers.get("Retry-After")) == (503, "5")
            assert "kafka" in (await answer.json())["error"]
        assert f"in-{ACME}" not in server.reply_ids  # the provider's retry will be taken
    finally:
        await client.close()
        await producer.stop()


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "SMSFLOW_WEBHOOK_SECRET is unset or a published default"),
        ({"SMSFLOW_WEBHOOK_SECRET": "dev-webhook-secret"}, "published default"),
        (
            {"SMSFLOW_GATEWAY_API": "twilio", "SMSFLOW_TWILIO_AUTH_TOKEN": "test-auth-token"},
            "SMSFLOW_TWILIO_AUTH_TOKEN",
        ),
    ],
)
def test_the_sender_refuses_to_start_without_explicit_secrets_outside_dev(
    environment: dict[str, str], expected: str
) -> None:
    # A broker that does not exist: the check comes before any connection.
    broker = {"SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    done = run_once("services.sms_sender", clean_env() | broker | environment)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("sms-sender: refusing to start: ")
    assert expected in line
