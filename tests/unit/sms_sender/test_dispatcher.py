"""The dispatcher with an in-memory gateway and publisher: what is sent, recorded and announced."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from schemas.ledger import LedgerState, SmsLedgerEntry
from schemas.sms import ProviderOptOut, SmsStatus, SmsStatusEvent
from schemas.topics import SMS_INBOUND, SMS_LEDGER, SMS_STATUS
from services.sms_sender.callbacks import DeliveryReport
from services.sms_sender.dispatcher import Dispatcher, Job
from services.sms_sender.fake_gateway import FakeGateway
from services.sms_sender.gateway import Accepted, Ambiguous, Refused, Rejected
from services.sms_sender.ledger import Ledger
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.publisher import MemoryPublisher
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.retries import RetryPolicy
from tests.unit.sms_sender.factories import entry, request

S = LedgerState
KEY = "sms-key-0001"


def make(
    gateway: FakeGateway | None = None,
    ledger: Ledger | None = None,
    wait_s: float = 0.3,
    publisher: MemoryPublisher | None = None,
) -> tuple[Dispatcher, FakeGateway, MemoryPublisher, OffsetTracker]:
    gateway = gateway or FakeGateway()
    publisher = publisher or MemoryPublisher()
    tracker = OffsetTracker()
    dispatcher = Dispatcher(
        gateway=gateway,
        publisher=publisher,
        tracker=tracker,
        public_url="http://sender.test/",
        policy=RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.02),
        limiter=RateLimiter(0, 0),
        ambiguous_wait_s=wait_s,
        ledger=ledger,
        rng=random.Random(1),
    )
    return dispatcher, gateway, publisher, tracker


async def run_jobs(dispatcher: Dispatcher, tracker: OffsetTracker, *jobs: Job) -> None:
    for job in jobs:
        tracker.add(job.partition, job.offset)
    dispatcher.submit(list(jobs))
    await asyncio.gather(*dispatcher.tasks)


def statuses(publisher: MemoryPublisher) -> list[tuple[str | None, SmsStatus]]:
    events: list[SmsStatusEvent] = publisher.of(SMS_STATUS.name)
    return [(e.idempotency_key, e.status) for e in events]


def states(publisher: MemoryPublisher) -> list[S]:
    entries: list[SmsLedgerEntry] = publisher.of(SMS_LEDGER.name)
    return [e.state for e in entries]


@pytest.mark.asyncio
async def test_a_request_is_recorded_sending_then_sent_and_its_offset_finished() -> None:
    dispatcher, gateway, publisher, tracker = make()
    await run_jobs(dispatcher, tracker, Job(0, 7, request(1)))
    assert gateway.calls == [(KEY, "http://sender.test/webhooks/status?ik=sms-key-0001")]
    assert states(publisher) == [S.SENDING, S.SENT]
    assert statuses(publisher) == [(KEY, SmsStatus.SENT)]
    assert tracker.committable() == {0: 8}


@pytest.mark.asyncio
async def test_a_replayed_request_is_never_sent_again_and_its_status_repeats_identically() -> None:
    dispatcher, gateway, publisher, tracker = make()
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    await run_jobs(dispatcher, tracker, Job(0, 2, request(1)), Job(0, 3, request(1)))
    assert gateway.calls_for(KEY) == 1
    events: list[SmsStatusEvent] = publisher.of(SMS_STATUS.name)
    assert {e.event_id for e in events} == {events[0].event_id}  # the same event, repeated
    assert tracker.committable() == {0: 4}


@pytest.mark.asyncio
async def test_concurrent_duplicates_wait_for_the_first_and_send_once() -> None:
    dispatcher, gateway, publisher, tracker = make(FakeGateway(latency_s=0.05))
    await run_jobs(dispatcher, tracker, *(Job(0, n, request(1)) for n in range(5)))
    assert gateway.calls_for(KEY) == 1
    assert states(publisher) == [S.SENDING, S.SENT]


@pytest.mark.asyncio
async def test_throttling_is_retried_after_retry_after_then_sent() -> None:
    gateway = FakeGateway()
    gateway.script(KEY, [Refused("throttled", 429, "20429", 0.2)])
    dispatcher, _, publisher, tracker = make(gateway)
    started = time.monotonic()
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert time.monotonic() - started >= 0.2
    assert gateway.calls_for(KEY) == 2
    assert states(publisher) == [S.SENDING, S.RETRYING, S.SENDING, S.SENT]
    sent = publisher.of(SMS_STATUS.name)[-1]
    assert (sent.status, sent.attempts) == (SmsStatus.SENT, 2)


@pytest.mark.asyncio
async def test_retries_are_bounded() -> None:
    gateway = FakeGateway()
    gateway.script(KEY, [Refused("http_503", 503, "20503")] * 5)
    dispatcher, _, publisher, tracker = make(gateway)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 3
    failed = publisher.of(SMS_STATUS.name)[-1]
    assert (failed.status, failed.reason, failed.error_code, failed.attempts) == (
        SmsStatus.FAILED,
        "retries_exhausted",
        "20503",
        3,
    )
    assert tracker.committable() == {0: 2}


@pytest.mark.asyncio
async def test_an_invalid_number_fails_with_the_provider_code_and_no_retry() -> None:
    gateway = FakeGateway()
    gateway.script(KEY, [Rejected("21211", 400, "invalid To")])
    dispatcher, _, publisher, tracker = make(gateway)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 1
    failed = publisher.of(SMS_STATUS.name)[-1]
    assert (failed.status, failed.reason, failed.error_code) == (
        SmsStatus.FAILED,
        "invalid_phone_number",
        "21211",
    )
    assert publisher.of(SMS_INBOUND.name) == []


@pytest.mark.asyncio
async def test_an_opted_out_recipient_fails_and_is_reported_for_opt_out() -> None:
    gateway = FakeGateway(api="twilio", dedupes=False)
    gateway.script(KEY, [Rejected("21610", 400, "unsubscribed recipient")])
    dispatcher, _, publisher, tracker = make(gateway)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    (opt_out,) = publisher.of(SMS_INBOUND.name)
    assert isinstance(opt_out, ProviderOptOut)
    assert (opt_out.key, opt_out.error_code, opt_out.contact_id) == (
        "acme:+358400000001",
        "21610",
        "c1",
    )
    assert statuses(publisher) == [(KEY, SmsStatus.FAILED)]
    # Replayed: the same opt-out is announced again (same event id), nothing is sent.
    await run_jobs(dispatcher, tracker, Job(0, 2, request(1)))
    again = publisher.of(SMS_INBOUND.name)
    assert len(again) == 2
    assert again[0].event_id == again[1].event_id
    assert gateway.calls_for(KEY) == 1


@pytest.mark.asyncio
async def test_ambiguous_on_a_deduplicating_api_resends_the_same_key() -> None:
    gateway = FakeGateway(api="http", dedupes=True)
    gateway.script(KEY, [Ambiguous("timeout")])
    dispatcher, _, publisher, tracker = make(gateway)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 2
    assert states(publisher) == [S.SENDING, S.SENDING, S.SENT]
    assert statuses(publisher) == [(KEY, SmsStatus.SENT)]


@pytest.mark.asyncio
async def test_ambiguous_on_twilio_is_never_resent_and_a_callback_resolves_it() -> None:
    gateway = FakeGateway(api="twilio", dedupes=False)
    gateway.script(KEY, [Ambiguous("timeout")])
    dispatcher, _, publisher, tracker = make(gateway, wait_s=5.0)
    tracker.add(0, 1)
    dispatcher.submit([Job(0, 1, request(1))])
    await asyncio.sleep(0.05)
    assert states(publisher) == [S.SENDING, S.UNKNOWN]
    assert tracker.committable() == {}  # unknown is not an outcome yet
    assert dispatcher.waiting == 1  # holds its offset, not a sending slot
    report = DeliveryReport("SM9", "delivered", None, KEY)
    assert await dispatcher.report_delivery(report) == "recorded"
    await asyncio.gather(*dispatcher.tasks)
    assert gateway.calls_for(KEY) == 1
    assert statuses(publisher) == [(KEY, SmsStatus.SENT), (KEY, SmsStatus.DELIVERED)]
    assert tracker.committable() == {0: 2}
    assert dispatcher.waiting == 0


@pytest.mark.asyncio
async def test_ambiguous_on_twilio_without_callback_fails_after_the_wait() -> None:
    gateway = FakeGateway(api="twilio", dedupes=False)
    gateway.script(KEY, [Ambiguous("connection_lost")])
    dispatcher, _, publisher, tracker = make(gateway, wait_s=0.2)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 1
    failed = publisher.of(SMS_STATUS.name)[-1]
    assert (failed.status, failed.reason) == (SmsStatus.FAILED, "ambiguous_outcome")
    # A late callback still tells the truth.
    assert await dispatcher.report_delivery(DeliveryReport("SM9", "delivered", None, KEY)) == (
        "recorded"
    )
    assert statuses(publisher)[-2:] == [(KEY, SmsStatus.SENT), (KEY, SmsStatus.DELIVERED)]


@pytest.mark.asyncio
async def test_after_a_crash_an_open_key_is_resent_only_on_a_deduplicating_api() -> None:
    http_ledger = Ledger()
    http_ledger.apply(entry(S.SENDING, api="http"), 0)
    dispatcher, gateway, publisher, tracker = make(ledger=http_ledger)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 1
    assert publisher.of(SMS_LEDGER.name)[0].attempts == 2  # counted on from the first life

    twilio_ledger = Ledger()
    twilio_ledger.apply(entry(S.SENDING, api="twilio"), 0)
    dispatcher, gateway, publisher, tracker = make(
        FakeGateway(api="twilio", dedupes=False), ledger=twilio_ledger, wait_s=0.2
    )
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls == []
    assert statuses(publisher) == [(KEY, SmsStatus.FAILED)]


@pytest.mark.asyncio
async def test_a_replay_after_a_crash_repeats_sent_before_a_later_delivery() -> None:
    # The process died after writing "sent" to the ledger but before announcing it; a delivery
    # report then moved the key on. The replayed request must not leave "sent" unannounced.
    ledger = Ledger()
    ledger.apply(entry(S.DELIVERED, provider_message_id="SM1"), 0)
    dispatcher, gateway, publisher, tracker = make(ledger=ledger)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls == []
    assert statuses(publisher) == [(KEY, SmsStatus.SENT), (KEY, SmsStatus.DELIVERED)]
    assert tracker.committable() == {0: 2}


@pytest.mark.asyncio
async def test_a_delivery_report_overtaking_the_answer_is_announced_once() -> None:
    gateway = FakeGateway(latency_s=0.1)
    gateway.script(KEY, [Accepted("SM1", 1)])
    dispatcher, _, publisher, tracker = make(gateway)
    tracker.add(0, 1)
    dispatcher.submit([Job(0, 1, request(1))])
    await asyncio.sleep(0.03)
    assert await dispatcher.report_delivery(DeliveryReport("SM1", "sent", None, KEY)) == "recorded"
    assert await dispatcher.report_delivery(DeliveryReport("SM1", "sent", None, KEY)) == "ignored"
    assert (
        await dispatcher.report_delivery(DeliveryReport("SM1", "delivered", None, KEY))
        == "recorded"
    )
    await asyncio.gather(*dispatcher.tasks)
    assert statuses(publisher) == [(KEY, SmsStatus.SENT), (KEY, SmsStatus.DELIVERED)]
    assert dispatcher.ledger.get(KEY).state is S.DELIVERED  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_reports_for_unknown_messages_are_unmatched() -> None:
    dispatcher, *_ = make()
    assert await dispatcher.report_delivery(DeliveryReport("SMx", "delivered")) == "unmatched"


@pytest.mark.asyncio
async def test_a_failed_ledger_write_stops_the_service_without_finishing_the_offset() -> None:
    class Failing(MemoryPublisher):
        async def ledger(self, entry: SmsLedgerEntry, partition: int) -> None:
            raise TimeoutError("broker unreachable")

    crashes: list[BaseException] = []
    dispatcher, gateway, _, tracker = make(publisher=Failing())
    dispatcher.on_crash = crashes.append
    tracker.add(0, 1)
    dispatcher.submit([Job(0, 1, request(1))])
    await asyncio.gather(*dispatcher.tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert gateway.calls == []  # nothing is sent before "sending" is durable
    assert [type(c) for c in crashes] == [TimeoutError]
    assert tracker.committable() == {}


@pytest.mark.asyncio
async def test_a_number_opted_out_while_queued_is_skipped_without_a_gateway_call() -> None:
    from schemas.sms import NumberOptOut, OptOutSource

    dispatcher, gateway, publisher, tracker = make()
    stop = NumberOptOut(
        account_id="acme", number=request(1).to, opted_out=True, source=OptOutSource.REPLY
    )
    dispatcher.opt_outs.apply([(stop, 0)])
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)), Job(0, 2, request(2)))
    assert gateway.calls_for(KEY) == 0
    assert gateway.calls_for("sms-key-0002") == 1  # another number goes on
    events: list[SmsStatusEvent] = publisher.of(SMS_STATUS.name)
    skipped = [e for e in events if e.idempotency_key == KEY]
    assert [(e.status, e.reason) for e in skipped] == [(SmsStatus.SKIPPED, "opted_out")]
    assert dispatcher.ledger.get(KEY).state is S.SKIPPED  # type: ignore[union-attr]
    assert tracker.committable() == {0: 3}


@pytest.mark.asyncio
async def test_an_unreachable_gateway_is_waited_out_as_deferred_not_failed() -> None:
    gateway = FakeGateway()
    gateway.script(KEY, [Refused("connection_failed")] * 8)  # beyond max_attempts (3)
    dispatcher, _, publisher, tracker = make(gateway)
    await run_jobs(dispatcher, tracker, Job(0, 1, request(1)))
    assert gateway.calls_for(KEY) == 9
    events: list[SmsStatusEvent] = publisher.of(SMS_STATUS.name)
    deferred = [e for e in events if e.status is SmsStatus.DEFERRED]
    assert deferred
    assert {e.reason for e in deferred} == {"gateway_unavailable"}
    assert all(e.deferred_until is not None for e in deferred)
    assert events[-1].status is SmsStatus.SENT


@pytest.mark.asyncio
async def test_a_revoked_partition_never_calls_the_gateway() -> None:
    dispatcher, gateway, publisher, tracker = make()
    dispatcher.owns = lambda partition: partition != 1
    await run_jobs(dispatcher, tracker, Job(1, 1, request(1)))
    assert gateway.calls_for(KEY) == 0
    assert states(publisher) == []  # no claim left behind for the new owner to wait on
