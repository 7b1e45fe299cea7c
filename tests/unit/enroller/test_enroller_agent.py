"""The faust agent without a broker: ``agent.test_context()``, tables and topics faked in memory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest
import pytest_asyncio
import structlog
from aiokafka.errors import KafkaConnectionError
from faust.exceptions import ProducerSendError

from schemas.actions import ActionCommand
from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentEvent
from services.common.codec import decode, encode
from services.enroller.app import Enroller
from services.enroller.partitioning import partition_of
from services.enroller.retries import ATTEMPTS
from services.enroller.settings import EnrollerSettings
from services.enroller.state import ContactState
from tests.unit.enroller.builders import change, definitions, result, workflow


def acked_send(error: BaseException | None = None) -> AsyncMock:
    """A topic's ``send``: queues, and returns the delivery future (failed with ``error``)."""

    async def send(**_: Any) -> asyncio.Future[None]:
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if error is None:
            delivered.set_result(None)
        else:
            delivered.set_exception(error)
        return delivered

    return AsyncMock(side_effect=send)


class Harness:
    def __init__(self) -> None:
        settings = EnrollerSettings(topic_prefix="unit.", enroller_port=6999, partitions=3)
        self.enroller = Enroller(settings, definitions(workflow()), partitions=3)
        # In-memory stand-ins: faust tables need a running producer to write changelogs.
        self.enroller.contacts = {}  # type: ignore[assignment]
        self.enroller.marks = {}  # type: ignore[assignment]
        for topic in ("actions", "events", "results", "statuses", "dead_letters"):
            setattr(getattr(self.enroller, topic), "send", acked_send())  # noqa: B010
        self.agent: Any = None

    def sent(self, topic: str) -> list[tuple[bytes, bytes]]:
        mock = getattr(self.enroller, topic).send
        return [(c.kwargs["key"], c.kwargs["value"]) for c in mock.await_args_list]

    def commands(self) -> list[ActionCommand]:
        return [decode(ActionCommand, v) for _, v in self.sent("actions")]

    def letters(self) -> list[DeadLetter]:
        return [decode(DeadLetter, v) for _, v in self.sent("dead_letters")]

    async def put(self, value: bytes, key: bytes) -> None:
        """Returns once the batch holding the record is handled (retries may go on after)."""
        handler = self.enroller.handler
        done = handler.finished + 1
        await self.agent.put(value, key=key)
        await self.until(lambda: handler.finished >= done)

    async def until(self, probe: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """``put`` returns once the agent takes the record; retries finish later."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not probe():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    # Another test may have configured structlog for a stream that is closed by now.
    structlog.reset_defaults()
    h = Harness()
    async with h.enroller.agent.test_context() as agent:
        h.agent = agent
        yield h
    # The stream made faust build its (never started) consumer, whose thread owns an event
    # loop; close it here, or its garbage warns during some later test.
    consumer = h.enroller.app.__dict__.get("_consumer")
    if consumer is not None:
        consumer._thread.thread_loop.close()
    gc.collect()
    structlog.reset_defaults()


@pytest.mark.asyncio
async def test_change_enrolls_and_dispatches_the_first_action(harness: Harness) -> None:
    customer = change(lifecyclestage="customer")
    await harness.put(encode(customer), customer.key.encode())
    commands = harness.commands()
    assert [(c.step, c.action.type) for c in commands] == [(0, "manage_subscription")]
    assert harness.sent("actions")[0][0] == b"acme:1001"
    events = [decode(EnrollmentEvent, v) for _, v in harness.sent("events")]
    assert [e.decision.value for e in events] == ["enrolled"]
    assert b"acme:1001" in harness.enroller.contacts

    await harness.put(encode(result(commands[0])), b"acme:1001")
    assert [c.step for c in harness.commands()] == [0, 1]
    await harness.put(encode(result(commands[0])), b"acme:1001")  # duplicate: ignored
    assert [c.step for c in harness.commands()] == [0, 1]


@pytest.mark.asyncio
async def test_one_log_line_per_record_without_phone_numbers(harness: Harness) -> None:
    customer = change(lifecyclestage="customer", mobilephone="+358401234567")
    with structlog.testing.capture_logs() as logs:
        await harness.put(encode(customer), customer.key.encode())
        await harness.put(b"{not json", b"acme:1")
    assert [line["event"] for line in logs] == ["change_applied", "record_dead_lettered"]
    assert logs[0]["decisions"] == ["enrolled:welcome-flow:criteria_met"]
    [dispatched] = logs[0]["dispatched"]
    assert dispatched.startswith("acme/welcome-flow/1001/1#manage-subscription-")
    assert "+358401234567" not in str(logs)


@pytest.mark.asyncio
async def test_poison_records_are_dead_lettered_and_the_next_record_is_handled(
    harness: Harness,
) -> None:
    await harness.put(b"{not json", b"acme:1")
    await harness.put(b'{"event_type": "contact.changed", "account_id": "acme"}', b"acme:2")
    wrong_key = change("3", lifecyclestage="customer")
    await harness.put(encode(wrong_key), b"acme:999")
    good = change("4", lifecyclestage="customer")
    await harness.put(encode(good), good.key.encode())

    letters = harness.letters()
    assert [(d.key, d.offset) for d in letters] == [("acme:1", 0), ("acme:2", 1), ("acme:999", 2)]
    assert "malformed JSON" in letters[0].reason
    assert "contact_id" in letters[1].reason  # names the missing field
    assert "is not the contact key" in letters[2].reason
    assert all(d.service == "enroller" for d in letters)
    assert letters[0].value == "{not json"
    assert [c.contact_id for c in harness.commands()] == ["4"]


@pytest.mark.asyncio
async def test_a_failing_send_is_retried_without_deciding_again(harness: Harness) -> None:
    harness.enroller.actions.send = AsyncMock(side_effect=[RuntimeError("broker hiccup"), None])
    customer = change(lifecyclestage="customer")
    await harness.put(encode(customer), customer.key.encode())
    await harness.until(lambda: harness.enroller.actions.send.await_count == 2)
    calls = harness.enroller.actions.send.await_args_list
    assert len(calls) == 2
    assert calls[0].kwargs == calls[1].kwargs  # the same command, not a second decision
    assert harness.letters() == []


@pytest.mark.asyncio
async def test_a_record_that_keeps_failing_is_dead_lettered(harness: Harness) -> None:
    harness.enroller.events.send = AsyncMock(side_effect=RuntimeError("down"))
    customer = change(lifecyclestage="customer")
    await harness.put(encode(customer), customer.key.encode())
    await harness.until(lambda: bool(harness.letters()))
    (letter,) = harness.letters()
    assert letter.reason == "unexpected RuntimeError: down"
    assert letter.error_type == "RuntimeError"


@pytest.mark.asyncio
async def test_a_send_waits_out_a_broker_outage_and_is_never_dead_lettered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.enroller.retries.OUTAGE_PAUSE_S", (0.0, 0.0))
    away = ProducerSendError("Error while sending")
    away.__cause__ = KafkaConnectionError("Connection refused")
    outage = [away] * (ATTEMPTS * 3)  # far more failures than a bad record is given
    harness.enroller.actions.send = AsyncMock(side_effect=[*outage, None])
    customer = change(lifecyclestage="customer")
    await harness.put(encode(customer), customer.key.encode())
    await harness.until(lambda: harness.enroller.actions.send.await_count == len(outage) + 1)
    calls = harness.enroller.actions.send.await_args_list
    assert all(c.kwargs == calls[0].kwargs for c in calls)  # the same command throughout
    assert harness.letters() == []
    assert b"acme:1001" in harness.enroller.contacts  # stored once the send went out


def test_tables_keep_raw_keys_so_changelogs_follow_the_source_partitions() -> None:
    settings = EnrollerSettings(topic_prefix="unit.", enroller_port=6999, partitions=3)
    enroller = Enroller(settings, definitions(), partitions=3)
    for table in (enroller.contacts, enroller.marks):
        assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
        assert table.use_partitioner
        assert table.changelog_topic.get_topic_name().startswith("unit.enroller-")


# murmur2 vectors from Apache Kafka's own tests (clients/.../utils/UtilsTest.java).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
def test_partition_of_matches_the_java_default_partitioner(key: str, java_hash: int) -> None:
    """Table writes go where producers put the key; timers depend on that."""
    for partitions in (3, 6, 7):
        assert partition_of(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


def test_timer_writes_stand_in_for_an_event_of_the_keys_partition() -> None:
    """faust's RocksDB store files writes under the current event's partition."""
    import faust.streams

    from services.enroller.partitioning import on_partition

    assert faust.streams.current_event() is None
    with on_partition(4):
        event = faust.streams.current_event()
        assert event is not None
        assert event.message.partition == 4
    assert faust.streams.current_event() is None


@pytest.mark.asyncio
async def test_a_timer_whose_send_fails_keeps_its_state_and_fires_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer sends before it writes: a failed send is retried later, never lost."""
    monkeypatch.setattr("services.enroller.retries.PAUSE_S", 0.0)
    enroller = harness.enroller
    customer = change(lifecyclestage="customer")
    key = customer.key
    await harness.put(encode(customer), key.encode())
    for _ in range(2):  # subscribe, then marketing status; then the 5-minute delay
        await harness.until(lambda: len(harness.commands()) > 0)
        await harness.put(encode(result(harness.commands()[-1])), key.encode())
    await harness.until(lambda: (enroller.load(key) or ContactState()).next_due() is not None)
    before = enroller.load(key)
    assert before is not None
    due = before.next_due()
    assert due is not None

    for failing in (
        AsyncMock(side_effect=RuntimeError("broker down")),  # refused when queued
        acked_send(RuntimeError("not acknowledged")),  # queued, then not delivered
    ):
        enroller.actions.send = failing
        await enroller.upkeep.fire(key, due)
        assert enroller.load(key) == before  # nothing written
        assert enroller.timers.pop_due(due + 1.0) == [key]  # and it is due again shortly

    enroller.actions.send = acked_send()
    await enroller.upkeep.fire(key, due + 1.0)
    [(_, value)] = [
        (c.kwargs["key"], c.kwargs["value"]) for c in enroller.actions.send.await_args_list
    ]
    assert decode(ActionCommand, value).action.type == "send_sms"
    after = enroller.load(key)
    assert after is not None
    assert after.next_due() is None
