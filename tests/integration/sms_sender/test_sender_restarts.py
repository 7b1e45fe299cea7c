"""kill -9 in the middle of a batch, then a restart: no duplicates, no losses."""

from __future__ import annotations

from collections import Counter

import pytest

from schemas.sms import SmsStatus
from schemas.topics import SMS_REQUESTS
from tests.integration.sms_sender.processes import Sender, Simulator, free_port
from tests.integration.sms_sender.traffic import final_status, make_requests, statuses_by_key
from tests.support import fresh_settings, produce, wait_for

pytestmark = pytest.mark.integration

COUNT = 600
IN_FLIGHT = 64


def _crash_and_restart(kafka_bootstrap: str, api: str):  # type: ignore[no-untyped-def]
    settings = fresh_settings(kafka_bootstrap)
    port = free_port()
    sim = Simulator(api, port, latency_ms=100, callback_delay_ms=20)
    sender = Sender(settings, sim, api, port, SMSFLOW_SENDER_MAX_IN_FLIGHT=str(IN_FLIGHT))
    requests = make_requests(COUNT, f"kill-{api}")
    keys = {r.idempotency_key for r in requests}
    try:
        produce(settings, SMS_REQUESTS, requests)
        sender.start()
        wait_for(lambda: len(sim.messages()) >= COUNT // 4, what="a quarter sent")
        sender.kill()  # SIGKILL: no drain, no commit, callbacks in flight are lost
        at_kill = len(sim.messages())
        assert at_kill < COUNT, "the batch finished before the kill"
        sender.start()

        def settled() -> dict | None:  # type: ignore[type-arg]
            by_key = statuses_by_key(settings)
            finals = {k: final_status(by_key.get(k, [])) for k in keys}
            done = all(s is not None for s in finals.values())
            return by_key if done else None

        by_key = wait_for(settled, timeout_s=90, interval_s=1, what="a final status for all")
        accepted = Counter(m["idempotency_key"] for m in sim.messages())
    finally:
        code = sender.stop()
        sim.stop()
    assert code == 0, sender.log.read_text()[-3000:]
    return keys, accepted, by_key


def test_kill_9_with_the_deduplicating_api_loses_nothing_and_duplicates_nothing(
    kafka_bootstrap: str,
) -> None:
    keys, accepted, by_key = _crash_and_restart(kafka_bootstrap, "http")
    assert set(accepted) == keys
    assert set(accepted.values()) == {1}
    for key in keys:
        assert final_status(by_key[key]) in (SmsStatus.SENT, SmsStatus.DELIVERED), key
        sent_ids = {e.event_id for e in by_key[key] if e.status is SmsStatus.SENT}
        assert len(sent_ids) == 1, key  # announced again perhaps, but as the same event
    # Delivery reports posted while the sender was down are lost (the provider retries
    # briefly); all the others arrive.
    delivered = [k for k in keys if final_status(by_key[k]) is SmsStatus.DELIVERED]
    assert len(delivered) >= COUNT - 2 * IN_FLIGHT


def test_kill_9_with_twilio_never_sends_twice_and_fails_only_what_was_in_doubt(
    kafka_bootstrap: str,
) -> None:
    keys, accepted, by_key = _crash_and_restart(kafka_bootstrap, "twilio")
    assert max(accepted.values()) == 1  # Twilio would have sent a duplicate: none here
    failed = {k for k in keys if final_status(by_key[k]) is SmsStatus.FAILED}
    for key in failed:
        reasons = {e.reason for e in by_key[key] if e.status is SmsStatus.FAILED}
        assert reasons == {"ambiguous_outcome"}, key
    # Only requests in flight at the kill could be in doubt (at most once).
    assert len(failed) <= IN_FLIGHT
    # Everything else was sent exactly once; nothing was silently lost.
    for key in keys - failed:
        assert accepted[key] == 1, key
        assert final_status(by_key[key]) in (SmsStatus.SENT, SmsStatus.DELIVERED), key


def test_a_rebalance_mid_batch_on_twilio_sends_nothing_twice(kafka_bootstrap: str) -> None:
    """A second sender joins mid-batch: partitions move, the ledger moves with them."""
    settings = fresh_settings(kafka_bootstrap)
    first_port, second_port = free_port(), free_port()
    sim = Simulator("twilio", first_port, latency_ms=100, callback_delay_ms=20)
    # Paced (30/s per instance, a burst of 30) so that no partition is finished when the
    # second one joins, about two seconds after the first: a partition holds ~200 requests.
    paced = {"SMSFLOW_SENDER_MAX_IN_FLIGHT": str(IN_FLIGHT), "SMSFLOW_SENDER_MESSAGES_PER_S": "30"}
    first = Sender(settings, sim, "twilio", first_port, **paced)
    second = Sender(settings, sim, "twilio", second_port, **paced)
    requests = make_requests(COUNT, "rebalance")
    keys = {r.idempotency_key for r in requests}
    try:
        produce(settings, SMS_REQUESTS, requests)
        first.start()
        second.start()  # joins while the first is sending: the partitions are split
        assert len(sim.messages()) < COUNT, "the batch finished before the rebalance"

        def settled() -> dict | None:  # type: ignore[type-arg]
            by_key = statuses_by_key(settings)
            return by_key if all(final_status(by_key.get(k, [])) for k in keys) else None

        by_key = wait_for(settled, timeout_s=90, interval_s=1, what="a status for every key")
        accepted = Counter(m["idempotency_key"] for m in sim.messages())
        handled = (
            first.metric("smsflow_sender_requests_total"),
            second.metric("smsflow_sender_requests_total"),
        )
    finally:
        codes = (second.stop(), first.stop())
        sim.stop()
    assert codes == (0, 0)
    assert min(handled) > 0  # both took part: partitions moved mid-batch
    assert max(accepted.values()) == 1
    failed = {k for k in keys if final_status(by_key[k]) is SmsStatus.FAILED}
    assert len(failed) <= IN_FLIGHT
    assert set(accepted) | failed == keys  # each key sent once, or failed as in doubt
