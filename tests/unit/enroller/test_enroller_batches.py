"""``RecordHandler`` without a broker: a batch decided in memory, outputs acked, then state."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from schemas.actions import ActionCommand
from schemas.dead_letters import DeadLetter
from services.common.codec import decode, encode
from services.enroller.contacts import Contacts
from services.enroller.fire_timers import Upkeep
from services.enroller.handle_records import RecordHandler
from services.enroller.outputs import Outputs
from services.enroller.settings import EnrollerSettings
from services.enroller.state import ContactState, decode_state
from tests.unit.enroller.builders import change, definitions, result, workflow

CHANGES, RESULTS = "unit.contact-changes", "unit.action-results"


class CountingTable(dict[bytes, bytes]):
    """A table that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


@dataclass
class FakeTopic:
    """Queues a send and returns its delivery; ``refuse`` fails the acks; ``table`` is what
    was stored when each message was sent."""

    table: CountingTable
    sent: list[bytes] = field(default_factory=list)
    stored_at_send: list[bool] = field(default_factory=list)
    refuse: BaseException | None = None

    async def send(self, *, key: bytes, value: bytes, force: bool = False) -> Any:
        self.sent.append(value)
        self.stored_at_send.append(key in self.table)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse is None:
            delivered.set_result(None)
        else:
            delivered.set_exception(self.refuse)
        return delivered


def make_handler() -> tuple[RecordHandler, Contacts]:
    table = CountingTable()
    outputs = Outputs(*(FakeTopic(table) for _ in range(5)))
    settings = EnrollerSettings(topic_prefix="unit.", partitions=3)
    contacts = Contacts(settings, definitions(workflow()), 3, outputs, table=table, marks={})
    handler = RecordHandler(contacts, {CHANGES: "contact.changed", RESULTS: "action.completed"})
    return handler, contacts


def event(value: bytes, key: str, offset: int, topic: str = CHANGES) -> Any:
    message = SimpleNamespace(
        topic=topic, partition=0, offset=offset, key=key.encode(), value=value, headers=None
    )
    return SimpleNamespace(message=message)


def commands(contacts: Contacts) -> list[ActionCommand]:
    return [decode(ActionCommand, v) for v in contacts.outputs.actions.sent]


@pytest.mark.asyncio
async def test_later_records_see_earlier_ones_and_each_contact_is_written_once() -> None:
    handler, contacts = make_handler()
    lead, customer = change(lifecyclestage="lead"), change(lifecyclestage="customer")
    other = change("1002", lifecyclestage="customer")
    batch = [
        event(encode(lead), lead.key, 0),
        event(encode(customer), customer.key, 1),
        event(encode(customer), customer.key, 2),  # the same change again: a duplicate
        event(encode(other), other.key, 3),
    ]
    await handler.handle(batch)

    # Both contacts enrolled once; the duplicate was seen against the batch's own state.
    assert sorted(c.contact_id for c in commands(contacts)) == ["1001", "1002"]
    assert sorted(contacts.table.writes) == [b"acme:1001", b"acme:1002"]
    state = decode_state(contacts.table[b"acme:1001"])
    assert state is not None
    assert state.properties["lifecyclestage"] == "customer"
    assert handler.finished == 4

    # A result in the next batch dispatches the next step (ordered dispatch).
    first = next(c for c in commands(contacts) if c.contact_id == "1001")
    await handler.handle([event(encode(result(first)), first.key, 0, RESULTS)])
    assert [c.step for c in commands(contacts) if c.contact_id == "1001"] == [0, 1]


@pytest.mark.asyncio
async def test_outputs_are_acknowledged_before_any_state_is_written() -> None:
    handler, contacts = make_handler()
    customer = change(lifecyclestage="customer")
    await handler.handle([event(encode(customer), customer.key, 0)])
    assert contacts.outputs.actions.stored_at_send == [False]
    assert contacts.outputs.events.stored_at_send == [False]
    assert b"acme:1001" in contacts.table


@pytest.mark.asyncio
async def test_refused_outputs_leave_the_state_unwritten_and_dead_letter_only_their_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("services.enroller.retries.PAUSE_S", 0.0)
    handler, contacts = make_handler()
    contacts.outputs.actions.refuse = RuntimeError("not acknowledged")
    customer, lead = change(lifecyclestage="customer"), change("1002", lifecyclestage="lead")
    await handler.handle(
        [event(encode(customer), customer.key, 0), event(encode(lead), lead.key, 1)]
    )

    # Split into single records: the one without commands is written, the other parked.
    assert list(contacts.table) == [b"acme:1002"]
    [letter] = [decode(DeadLetter, v) for v in contacts.outputs.dead_letters.sent]
    assert (letter.key, letter.offset) == ("acme:1001", 0)
    assert letter.reason == "unexpected RuntimeError: not acknowledged"


@pytest.mark.asyncio
async def test_a_poison_record_is_dead_lettered_and_the_batch_goes_on() -> None:
    handler, contacts = make_handler()
    customer = change(lifecyclestage="customer")
    wrong = change("1003", lifecyclestage="customer")
    await handler.handle(
        [
            event(b"{not json", "acme:1", 0),
            event(encode(wrong), "acme:999", 1),
            event(encode(customer), customer.key, 2),
        ]
    )
    letters = [decode(DeadLetter, v) for v in contacts.outputs.dead_letters.sent]
    assert [(d.key, d.offset) for d in letters] == [("acme:1", 0), ("acme:999", 1)]
    assert [c.contact_id for c in commands(contacts)] == ["1001"]
    assert list(contacts.table) == [b"acme:1001"]


@pytest.mark.asyncio
async def test_only_records_that_did_something_log_at_info() -> None:
    handler, contacts = make_handler()
    quiet, customer = change(page_views=3), change("1002", lifecyclestage="customer")
    with structlog.testing.capture_logs() as logs:
        await handler.handle(
            [event(encode(quiet), quiet.key, 0), event(encode(customer), customer.key, 1)]
        )
    assert [(line["event"], line["log_level"], line["key"]) for line in logs] == [
        ("change_applied", "debug", "acme:1001"),
        ("change_applied", "info", "acme:1002"),
    ]
    assert len(contacts.table.writes) == 2  # a no-op for workflows still updates the contact


async def _waiting_in_the_delay(handler: RecordHandler, contacts: Contacts) -> float:
    """Contacts 1001 and 1002 enrolled, through subscribe and status, now in the delay."""
    for contact in ("1001", "1002"):
        customer = change(contact, lifecyclestage="customer")
        await handler.handle([event(encode(customer), customer.key, 0)])
    for step in range(2):
        for command in [c for c in commands(contacts) if c.step == step]:
            await handler.handle([event(encode(result(command)), command.key, 0, RESULTS)])
    dues = [(contacts.load(k) or ContactState()).next_due() for k in ("acme:1001", "acme:1002")]
    assert None not in dues
    return max(d for d in dues if d is not None)


@pytest.mark.asyncio
async def test_due_timers_fire_together_outputs_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.enroller.retries.PAUSE_S", 0.0)
    handler, contacts = make_handler()
    due = await _waiting_in_the_delay(handler, contacts)
    upkeep = Upkeep(app=None, changes_topic=CHANGES, contacts=contacts)
    before = dict(contacts.table)

    contacts.outputs.actions.refuse = RuntimeError("not acknowledged")
    await upkeep.fire_all(["acme:1001", "acme:1002"], due)
    assert contacts.table == before  # nothing written
    assert contacts.timers.pop_due(due + 1.0) == ["acme:1001", "acme:1002"]  # due again soon

    contacts.outputs.actions.refuse = None
    sent = len(contacts.outputs.actions.sent)
    await upkeep.fire_all(["acme:1001", "acme:1002"], due + 1.0)
    fired = [decode(ActionCommand, v) for v in contacts.outputs.actions.sent[sent:]]
    assert sorted((c.contact_id, c.action.type) for c in fired) == [
        ("1001", "send_sms"),
        ("1002", "send_sms"),
    ]
    assert contacts.outputs.actions.stored_at_send[-2:] == [True, True]  # the old states
    for key in ("acme:1001", "acme:1002"):
        assert (contacts.load(key) or ContactState()).next_due() is None


class RebalancingApp:
    """A faust app in the middle of a rebalance (which runs on the same event loop)."""

    rebalancing = True


@pytest.mark.asyncio
async def test_overdue_timers_do_not_starve_a_rebalance() -> None:
    _, contacts = make_handler()
    contacts.timers.schedule("acme:1001", time.time() - 1)  # overdue, cannot fire yet
    upkeep = Upkeep(app=RebalancingApp(), changes_topic=CHANGES, contacts=contacts)
    timer_task = asyncio.create_task(upkeep.run(housekeeping_s=30))
    # A starving task never gives the loop back, so nothing but a signal can end the test.
    previous = signal.signal(signal.SIGALRM, _starved)
    signal.alarm(5)
    try:
        turns = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:  # the rebalance's own work gets its turns
            await asyncio.sleep(0.01)
            turns += 1
        assert turns >= 10
        assert not timer_task.done()
        assert contacts.timers.next_due() is not None  # still waiting to fire
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        timer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer_task


def _starved(signum: int, frame: object) -> None:
    raise TimeoutError("the timer task kept the event loop to itself")
