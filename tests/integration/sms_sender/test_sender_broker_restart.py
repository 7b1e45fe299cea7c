"""The broker goes away for 30 s in the middle of a run: the sender waits and carries on by
itself. A broker of this test's own (the shared one stays up), on free ports."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from schemas.topics import SMS_REQUESTS
from services.control.local_kafka import LocalBroker
from services.control.ports import free_port
from tests.documents import publish_definitions
from tests.integration.sms_sender.processes import Sender, Simulator
from tests.integration.sms_sender.traffic import make_requests
from tests.samples import design_documents
from tests.support import fresh_settings, produce

pytestmark = [
    pytest.mark.integration,
    # LocalBroker leaves the broker running detached: its Popen handle is dropped on purpose.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

COUNT = 500
OUTAGE_S = 30


def test_a_broker_restart_loses_and_duplicates_nothing_and_the_sender_never_exits(
    own_broker: LocalBroker,
) -> None:
    settings = fresh_settings(own_broker.bootstrap)
    publish_definitions(settings, design_documents()[:1])
    port = free_port()
    sim = Simulator("twilio", port, latency_ms=5, callback_delay_ms=20)
    sender = Sender(settings, sim, "twilio", port, SMSFLOW_SENDER_MESSAGES_PER_S="20").start()
    requests = make_requests(COUNT, "restart")
    keys = {r.idempotency_key for r in requests}
    try:
        produce(settings, SMS_REQUESTS, requests)
        time.sleep(5)  # a part is sent, most still queue behind the rate limit
        before = len({m["idempotency_key"] for m in sim.messages()} & keys)
        assert 0 < before < COUNT
        own_broker.stop()
        time.sleep(OUTAGE_S)
        assert sender.process is not None
        assert sender.process.poll() is None  # waited, did not exit
        own_broker.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if len({m["idempotency_key"] for m in sim.messages()} & keys) == COUNT:
                break
            assert sender.process.poll() is None, sender.log.read_text()[-3000:]
            time.sleep(1)
        code = sender.stop()
    finally:
        sender.stop()
        messages = sim.messages()
        sim.stop()
    accepted = Counter(m["idempotency_key"] for m in messages if m["idempotency_key"] in keys)
    assert len(accepted) == COUNT  # 0 lost
    assert {k: n for k, n in accepted.items() if n > 1} == {}  # 0 duplicates
    assert code == 0
