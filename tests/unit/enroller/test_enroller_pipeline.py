"""The enroller on the record pipeline, broker-free: its record handler, its timer jobs and
its take-over after an assignment, on memory stores and a producer that acknowledges at once
(or refuses on demand)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import pytest
import structlog
from aiokafka.structs import TopicPartition

from schemas.actions import ActionCommand
from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentEvent
from services.common.codec import decode, encode
from services.enroller.__main__ import own_topics
from services.enroller.contacts import CONTACTS, SCANS, Contacts
from services.enroller.enroll_contacts import EnrollContacts
from services.enroller.fire_timers import Upkeep
from services.enroller.outputs import Outputs
from services.enroller.partitioning import partition_of
from services.enroller.settings import EnrollerSettings
from services.enroller.state import ContactState, decode_state
from tests.unit.enroller.builders import change, definitions, result, workflow
from tests.unit.pipeline_fakes import MemoryPipeline, record

CHANGES, RESULTS = "unit.contact-changes", "unit.action-results"
SETTINGS = EnrollerSettings(topic_prefix="unit.", partitions=1)


class Harness:
    """One partition (0): every record and timer of the test lands on it."""

    def __init__(self) -> None:
        self.contacts = Contacts(SETTINGS, definitions(workflow()), Outputs.of(SETTINGS))
        handlers = {
            CHANGES: EnrollContacts(self.contacts, CHANGES, "contact.changed"),
            RESULTS: EnrollContacts(self.contacts, RESULTS, "action.completed"),
        }
        self.memory = MemoryPipeline(
            handlers,
            {CONTACTS: "unit.enroller-contacts-changelog", SCANS: "unit.enroller-scans"},
            raw={CONTACTS},
            service="enroller",
        )
        self.producer = self.memory.producer
        self.upkeep = Upkeep(self.memory.pipeline, self.contacts, CHANGES, 1)
        self.offsets = {CHANGES: 0, RESULTS: 0}

    async def put(self, *items: tuple[bytes, bytes | str], topic: str = CHANGES) -> int | None:
        """One batch of (value, key) records; the offset it would commit."""
        records = []
        for value, key in items:
            raw_key = key.encode() if isinstance(key, str) else key
            records.append(record(topic, self.offsets[topic], value, raw_key))
            self.offsets[topic] += 1
        return await self.memory.run(records)

    async def changes(self, *changes: Any) -> int | None:
        return await self.put(*((encode(c), c.key) for c in changes))

    async def results(self, *results: Any) -> int | None:
        return await self.put(*((encode(r), r.key) for r in results), topic=RESULTS)

    def commands(self) -> list[ActionCommand]:
        return [decode(ActionCommand, s.value) for s in self.producer.on("unit.actions")]

    def letters(self) -> list[DeadLetter]:
        return [decode(DeadLetter, s.value) for s in self.producer.on("dead-letters")]

    def state(self, key: str = "acme:1001") -> ContactState | None:
        return decode_state(self.memory.stored(CONTACTS, key))

    def written(self) -> list[bytes | None]:
        """Keys of the changelog records, in order."""
        return [s.key for s in self.producer.on("unit.enroller-contacts-changelog")]

    async def waiting_in_the_delay(self, *contacts: str) -> float:
        """Contacts enrolled, through subscribe and status, now in the 5-minute delay."""
        await self.changes(*(change(c, lifecyclestage="customer") for c in contacts))
        for step in range(2):
            await self.results(*(result(c) for c in self.commands() if c.step == step))
        dues = [(self.state(f"acme:{c}") or ContactState()).next_due() for c in contacts]
        assert None not in dues
        return max(d for d in dues if d is not None)


@pytest.fixture(autouse=True)
def fresh_logging() -> Any:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


# ---------------------------------------------------------------- records


@pytest.mark.asyncio
async def test_a_change_enrolls_and_each_result_dispatches_the_next_step_once() -> None:
    h = Harness()
    assert await h.changes(change(lifecyclestage="customer")) == 1
    [command] = h.commands()
    assert (command.step, command.action.type) == (0, "manage_subscription")
    assert h.producer.on("unit.actions")[0].key == b"acme:1001"
    events = [decode(EnrollmentEvent, s.value) for s in h.producer.on("unit.enrollment-events")]
    assert [e.decision.value for e in events] == ["enrolled"]

    await h.results(result(command))
    assert [c.step for c in h.commands()] == [0, 1]
    await h.results(result(command))  # a duplicate: ignored
    assert [c.step for c in h.commands()] == [0, 1]


@pytest.mark.asyncio
async def test_later_records_see_earlier_ones_and_each_contact_is_written_once() -> None:
    h = Harness()
    lead, customer = change(lifecyclestage="lead"), change(lifecyclestage="customer")
    other = change("1002", lifecyclestage="customer")
    assert await h.changes(lead, customer, customer, other) == 4  # customer twice: a duplicate

    assert sorted(c.contact_id for c in h.commands()) == ["1001", "1002"]
    assert sorted(h.written()) == [b"acme:1001", b"acme:1002"]
    state = h.state()
    assert state is not None
    assert state.properties["lifecyclestage"] == "customer"


@pytest.mark.asyncio
async def test_outputs_are_acknowledged_before_any_state_is_written() -> None:
    h = Harness()
    await h.changes(change(lifecyclestage="customer"), change("1002", lifecyclestage="customer"))
    topics = [s.topic for s in h.producer.sent]
    first_state = topics.index("unit.enroller-contacts-changelog")
    assert {"unit.actions", "unit.enrollment-events"} == set(topics[:first_state])
    assert set(topics[first_state:]) == {"unit.enroller-contacts-changelog"}


@pytest.mark.asyncio
async def test_refused_outputs_leave_the_state_unwritten_and_the_retry_decides_the_same() -> None:
    h = Harness()
    h.producer.fail = RuntimeError("not acknowledged")
    customer = change(lifecyclestage="customer")
    with pytest.raises(RuntimeError):
        await h.changes(customer)
    assert h.state() is None  # nothing written, the offset not committed
    h.offsets[CHANGES] = 0
    assert await h.changes(customer) == 1  # the same record again
    # What the refused send got out is sent again with the same ids: the same decision.
    commands = h.commands()
    assert {(c.action_id, c.event_id, c.step) for c in commands} == {
        (commands[0].action_id, commands[0].event_id, 0)
    }
    assert h.letters() == []


@pytest.mark.asyncio
async def test_poison_records_are_dead_lettered_and_the_batch_goes_on() -> None:
    h = Harness()
    wrong_key = change("3", lifecyclestage="customer")
    good = change("4", lifecyclestage="customer")
    future = change("5", lifecyclestage="customer")
    future = future.model_copy(update={"occurred_at": future.occurred_at.replace(year=2099)})
    committed = await h.put(
        (b"{not json", "acme:1"),
        (b'{"event_type": "contact.changed", "account_id": "acme"}', "acme:2"),
        (encode(wrong_key), "acme:999"),
        (encode(future), future.key),
        (encode(good), good.key),
    )
    assert committed == 5
    letters = sorted(h.letters(), key=lambda d: d.offset)  # keyed: spread over partitions
    assert [(d.key, d.offset) for d in letters] == [
        ("acme:1", 0),
        ("acme:2", 1),
        ("acme:999", 2),
        ("acme:5", 3),
    ]
    assert "malformed JSON" in letters[0].reason
    assert "contact_id" in letters[1].reason  # names the missing field
    assert "is not the contact key" in letters[2].reason
    assert "in the future" in letters[3].reason  # the engine's own refusal
    assert all(d.service == "enroller" for d in letters)
    assert letters[0].value == "{not json"
    assert [c.contact_id for c in h.commands()] == ["4"]
    assert h.written() == [b"acme:4"]


@pytest.mark.asyncio
async def test_one_line_per_record_info_only_when_it_did_something_and_no_numbers() -> None:
    h = Harness()
    quiet = change(page_views=3)
    customer = change("1002", lifecyclestage="customer", mobilephone="+358401234567")
    with structlog.testing.capture_logs() as logs:
        await h.changes(quiet, customer)
    assert [(line["event"], line["log_level"], line["key"]) for line in logs] == [
        ("change_applied", "debug", "acme:1001"),
        ("change_applied", "info", "acme:1002"),
    ]
    assert logs[1]["decisions"] == ["enrolled:welcome-flow:criteria_met"]
    [dispatched] = logs[1]["dispatched"]
    assert dispatched.startswith("acme/welcome-flow/1002/1#manage-subscription-")
    assert "+358401234567" not in str(logs)
    assert len(h.written()) == 2  # a no-op for workflows still updates the contact


@pytest.mark.asyncio
async def test_records_wait_for_the_definitions_to_be_loaded() -> None:
    h = Harness()
    loaded = h.contacts.definitions.loaded = asyncio.Event()  # a view still reading
    handling = asyncio.create_task(h.changes(change(lifecyclestage="customer")))
    await asyncio.sleep(0.1)
    assert not handling.done()
    assert h.producer.sent == []
    loaded.set()
    assert await asyncio.wait_for(handling, 5) == 1
    assert [c.action.type for c in h.commands()] == ["manage_subscription"]


# ---------------------------------------------------------------- timers


@pytest.mark.asyncio
async def test_due_timers_fire_together_outputs_first_and_again_when_refused() -> None:
    h = Harness()
    due = await h.waiting_in_the_delay("1001", "1002")
    before = {k: h.memory.stored(CONTACTS, k) for k in ("acme:1001", "acme:1002")}

    h.producer.fail = RuntimeError("not acknowledged")
    await h.upkeep.fire_all(["acme:1001", "acme:1002"], due)
    assert {k: h.memory.stored(CONTACTS, k) for k in before} == before  # nothing written
    assert h.contacts.timers.pop_due(due + 1.0) == ["acme:1001", "acme:1002"]  # due again soon

    sent = len(h.producer.sent)
    with structlog.testing.capture_logs() as logs:
        await h.upkeep.fire_all(["acme:1001", "acme:1002"], due + 1.0)
    fired = h.producer.sent[sent:]
    assert [s.topic for s in fired] == ["unit.actions"] * 2 + [
        "unit.enroller-contacts-changelog"
    ] * 2
    assert sorted((c.contact_id, c.action.type) for c in h.commands() if c.step == 3) == [
        ("1001", "send_sms"),
        ("1002", "send_sms"),
    ]
    for key in before:
        assert (h.state(key) or ContactState()).next_due() is None
    assert [line["event"] for line in logs] == ["timer_fired", "timer_fired"]


@pytest.mark.asyncio
async def test_a_timer_of_a_partition_not_held_here_does_nothing() -> None:
    h = Harness()
    due = await h.waiting_in_the_delay("1001")
    sent = len(h.producer.sent)
    h.memory.state.drop([0])  # revoked: the partition's state is another instance's now
    await h.upkeep.fire_all(["acme:1001"], due)
    assert h.producer.sent[sent:] == []
    assert 0 not in h.memory.state.partitions  # and not recreated by the timer


@pytest.mark.asyncio
async def test_overdue_timers_of_a_partition_not_held_do_not_starve_the_loop() -> None:
    h = Harness()
    h.contacts.timers.schedule("acme:1001", time.time() - 1)  # overdue, no state held
    timer_task = asyncio.create_task(h.upkeep.run(housekeeping_s=30))
    # A starving task never gives the loop back, so nothing but a signal can end the test.
    previous = signal.signal(signal.SIGALRM, _starved)
    signal.alarm(5)
    try:
        turns = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:  # a rebalance's own work gets its turns
            await asyncio.sleep(0.01)
            turns += 1
        assert turns >= 10
        assert not timer_task.done()
        assert h.producer.sent == []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        timer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer_task


def _starved(signum: int, frame: object) -> None:
    raise TimeoutError("the timer task kept the event loop to itself")


@pytest.mark.asyncio
async def test_an_assignment_rebuilds_the_timers_and_resends_what_awaits_a_result() -> None:
    h = Harness()
    due = await h.waiting_in_the_delay("1002")
    await h.changes(change(lifecyclestage="customer"))
    [first] = [c for c in h.commands() if c.contact_id == "1001"]  # still awaiting its result
    h.contacts.timers.clear()  # a new instance: nothing in memory but the restored state

    await h.upkeep.assigned({TopicPartition(CHANGES, 0), TopicPartition(RESULTS, 0)})
    with structlog.testing.capture_logs() as logs:
        await h.upkeep.tick(time.time())
    resent = [c for c in h.commands() if c.contact_id == "1001"]
    assert [c.action_id for c in resent] == [first.action_id] * 2  # the same command again
    assert [c.event_id for c in resent] == [first.event_id] * 2
    assert h.upkeep.ready
    assert any(line["event"] == "commands_resent" for line in logs)
    assert h.contacts.timers.pop_due(due) == ["acme:1002"]  # its delay, found in the state

    await h.upkeep.assigned({TopicPartition(CHANGES, 0), TopicPartition(RESULTS, 0)})
    await h.upkeep.tick(time.time())  # kept, not gained: nothing is re-sent
    assert len([c for c in h.commands() if c.contact_id == "1001"]) == 2


@pytest.mark.asyncio
async def test_the_timer_waits_for_the_definitions_to_be_loaded() -> None:
    h = Harness()
    due = await h.waiting_in_the_delay("1001")
    loaded = h.contacts.definitions.loaded = asyncio.Event()
    ticking = asyncio.create_task(h.upkeep.tick(due))
    await asyncio.sleep(0.05)
    assert not ticking.done()
    loaded.set()
    await asyncio.wait_for(ticking, 1)
    assert h.commands()[-1].action.type == "send_sms"


# ---------------------------------------------------------------- layout


def test_the_changelogs_keep_their_names_and_follow_the_source_partitions() -> None:
    topics = {t.name: t for t in own_topics(SETTINGS, 6)}
    assert set(topics) == {
        "unit.enroller-contacts-changelog",
        "unit.enroller-existing-scans-changelog",
    }
    for topic in topics.values():
        assert topic.num_partitions == 6
        assert dict(topic.topic_configs) == {"cleanup.policy": "compact"}


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
    """A contact's state is where producers put its records; timers depend on that."""
    for partitions in (3, 6, 7):
        assert partition_of(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions
