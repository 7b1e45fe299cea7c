"""A sender number's rate limit holds with two sender replicas, not twice over."""

from __future__ import annotations

from datetime import datetime

import pytest

from schemas.definitions import DefinitionApplied
from schemas.topics import DEFINITIONS, SMS_REQUESTS
from tests.harness import StartService
from tests.integration.sms_sender.processes import Sender, Simulator, free_port
from tests.integration.sms_sender.traffic import make_requests
from tests.samples import design_documents
from tests.support import fresh_settings, produce, wait_for

pytestmark = pytest.mark.integration

COUNT = 120
RATE = 10  # the account's own limit for its sender number, per second


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_two_replicas_share_the_accounts_rate_limit(
    kafka_bootstrap: str, service: StartService
) -> None:
    settings = fresh_settings(kafka_bootstrap, partitions=6)
    document = design_documents()[0]
    document["spec"]["sender_rate"] = {"messages_per_s": RATE}
    produce(settings, DEFINITIONS, [DefinitionApplied.model_validate({"document": document})])
    ports = free_port(), free_port()
    sim = service(Simulator("http", ports[0], latency_ms=5, callback_delay_ms=20))
    # The service default would allow far more: only the account's limit holds them back.
    senders = [
        Sender(settings, sim, "http", p, SMSFLOW_SENDER_MESSAGES_PER_S="1000") for p in ports
    ]
    try:
        for sender in senders:
            sender.start()
        requests = make_requests(COUNT, "shared-rate", sender=document["spec"]["sender"])
        keys = {r.idempotency_key for r in requests}
        produce(settings, SMS_REQUESTS, requests)
        found = wait_for(
            lambda: (
                (m := [x for x in sim.messages() if x["idempotency_key"] in keys])
                and len(m) == COUNT
                and m
            ),
            timeout_s=90,
            interval_s=0.5,
            what="every SMS accepted",
        )
    finally:
        codes = [s.stop() for s in senders]
    assert codes == [0, 0]
    stamps = sorted(_at(m["received_at"]) for m in found)
    # Both replicas together: a burst of about one second's worth, then RATE per second.
    # Each taking the whole limit would finish in half the time.
    assert stamps[-1] - stamps[0] >= (COUNT - 2 * RATE) / RATE
