"""The enroller process on the real broker, with this test playing the action runner.

One enroller serves the whole module; each test uses contacts and workflows of its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.actions import ActionCommand
from schemas.contacts import ContactChange
from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentEvent
from schemas.topics import ACTION_RESULTS, ACTIONS, CONTACT_CHANGES, DEAD_LETTERS, ENROLLMENT_EVENTS
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer
from tests.documents import (
    MARKETING,
    SEND,
    SUBSCRIBE,
    account_and_message,
    delay,
    eq,
    publish_definitions,
    workflow,
)
from tests.integration.enroller.process import EnrollerProcess, answer, emit
from tests.stack import Stack
from tests.support import fresh_settings, produce

pytestmark = pytest.mark.integration

ORDER = workflow(
    "order-flow", eq("lifecyclestage", "customer"), [SUBSCRIBE, MARKETING, delay(2), SEND]
)
REENROLL = workflow(
    "reenroll-flow",
    [[{"property": "score", "operator": "gte", "value": 10}]],
    [SEND],
    reenroll_on=["score"],
)
ONCE = workflow("once-flow", eq("tier", "gold"), [SEND])
SUPPRESS = workflow(
    "suppress-flow", eq("segment", "gold"), [delay(3), SEND], suppression=eq("do_not_text", True)
)
DISABLED = workflow("disabled-flow", eq("plan", "pro"), [SEND], enabled=False)
TOGGLE = workflow("toggle-flow", eq("plan", "basic"), [delay(3), MARKETING, SEND])
EXISTING = workflow("existing-flow", eq("tier", "platinum"), [SEND], enroll_existing=True)
REPLAY = workflow("replay-flow", eq("rank", "gold"), [SEND], reenroll_on=["rank"])
PROBE = workflow("probe-flow", eq("probe", "now"), [SEND])


class EnrollerStack(Stack):
    """The enroller as a process, with the test as the action runner: its commands read,
    its decisions read, results answered (``answer``)."""

    def __init__(
        self, settings: KafkaSettings, enroller: EnrollerProcess, documents: list[dict[str, Any]]
    ) -> None:
        super().__init__(settings, enroller, documents=documents)
        self.enroller = enroller
        self.actions = self.tail(ACTIONS, ActionCommand)
        self.events = self.tail(ENROLLMENT_EVENTS, EnrollmentEvent)
        self.letters = self.tail(DEAD_LETTERS, DeadLetter)

    def commands_of(self, contact: str) -> list[ActionCommand]:
        return [c for c in self.actions.poll() if c.contact_id == contact]

    def command(self, contact: str, step: int, timeout_s: float = 30.0) -> ActionCommand:
        found: list[ActionCommand] = self.actions.wait(
            lambda items: [c for c in items if c.contact_id == contact and c.step == step],
            timeout_s,
            what=f"step {step} for {contact}",
        )
        return found[0]

    def decisions_of(self, contact: str) -> list[tuple[str, str, str | None]]:
        return [
            (e.workflow_id, e.decision.value, e.reason)
            for e in self.events.poll()
            if e.contact_id == contact
        ]

    def wait_decision(self, contact: str, decision: str, timeout_s: float = 30.0) -> None:
        self.events.wait(
            lambda items: any(e.contact_id == contact and e.decision == decision for e in items),
            timeout_s,
            what=f"{decision} for {contact}",
        )

    def handled_changes(self) -> float:
        text = self.enroller.get("/metrics")
        pattern = (
            r'smsflow_enroller_records_total\{outcome="handled",topic="contact-changes"\} (\S+)'
        )
        match = re.search(pattern, text)
        return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnrollerStack]:
    settings = fresh_settings(kafka_bootstrap)
    enroller = EnrollerProcess(settings, tmp_path_factory.mktemp("enroller"))
    documents = [
        *account_and_message(),
        ORDER,
        REENROLL,
        ONCE,
        SUPPRESS,
        DISABLED,
        TOGGLE,
        REPLAY,
        PROBE,
    ]
    with EnrollerStack(settings, enroller, documents) as stack:
        yield stack


def test_enroll_then_actions_in_order_then_completed(stack: EnrollerStack) -> None:
    s = stack.settings
    emit(s, "order-1", lifecyclestage="customer", firstname="Aino")
    subscribe = stack.command("order-1", 0)
    assert subscribe.action.type == "manage_subscription"
    assert subscribe.enrollment_id == "acme/order-flow/order-1/1"
    # A8: the workflow action's stable id, derived from its content (no id was written).
    assert subscribe.action_id == f"acme/order-flow/order-1/1#{subscribe.action.id}"
    assert str(subscribe.action.id).startswith("manage-subscription-")
    stack.actions.settle(1.0)
    assert len(stack.commands_of("order-1")) == 1  # nothing runs ahead of a result

    answer(s, subscribe)
    marketing = stack.command("order-1", 1)
    assert marketing.action.type == "set_marketing_contact_status"
    write = ContactChange(
        account_id="acme",
        contact_id="order-1",
        properties={"hs_marketable_status": "true"},
        source="workflow:order-flow",
    )
    answered_at = time.monotonic()
    answer(s, marketing, contact_change=write)
    produce(s, CONTACT_CHANGES, [write])  # the runner also publishes the write

    sms = stack.command("order-1", 3, timeout_s=15)
    assert time.monotonic() - answered_at >= 1.5  # the 2 s delay was waited out
    assert sms.action.type == "send_sms"
    assert sms.contact["hs_marketable_status"] == "true"  # the earlier step's write is seen
    answer(s, sms)
    stack.wait_decision("order-1", "completed")
    assert [(c.step, c.attempt) for c in stack.commands_of("order-1")] == [(0, 1), (1, 1), (3, 1)]
    assert stack.decisions_of("order-1") == [
        ("order-flow", "enrolled", "criteria_met"),
        ("order-flow", "completed", None),
    ]


def test_reenrollment_only_on_a_transition(stack: EnrollerStack) -> None:
    s = stack.settings
    emit(s, "re-1", score=5)
    emit(s, "re-1", score=12)
    answer(s, stack.command("re-1", 0))
    stack.wait_decision("re-1", "completed")
    emit(s, "re-1", score=15)  # still matching: no transition, no re-enrollment
    emit(s, "re-1", score=3)
    emit(s, "re-1", score=11)  # not matching -> matching, on a re-enrollment property
    stack.wait_decision("re-1", "reenrolled")
    stack.events.settle(1.0)
    assert stack.decisions_of("re-1") == [
        ("reenroll-flow", "enrolled", "criteria_met"),
        ("reenroll-flow", "completed", None),
        ("reenroll-flow", "reenrolled", "reenroll_trigger:score"),
    ]
    assert [c.enrollment_id for c in stack.commands_of("re-1")] == [
        "acme/reenroll-flow/re-1/1",
        "acme/reenroll-flow/re-1/2",
    ]

    # Without re-enrollment triggers a contact is enrolled once.
    emit(s, "once-1", tier="gold")
    answer(s, stack.command("once-1", 0))
    stack.wait_decision("once-1", "completed")
    emit(s, "once-1", tier="silver")
    emit(s, "once-1", tier="gold")
    stack.wait_decision("once-1", "not_enrolled")
    assert stack.decisions_of("once-1")[-1] == ("once-flow", "not_enrolled", "reenrollment_off")
    assert len(stack.commands_of("once-1")) == 1


def test_suppression_blocks_and_unenrolls(stack: EnrollerStack) -> None:
    s = stack.settings
    emit(s, "sup-1", segment="gold", do_not_text=True)
    emit(s, "sup-2", segment="gold")
    stack.wait_decision("sup-1", "not_enrolled")
    stack.wait_decision("sup-2", "enrolled")
    emit(s, "sup-2", do_not_text=True)  # joins suppression while waiting in the delay
    stack.wait_decision("sup-2", "unenrolled")
    stack.actions.settle(4.0)  # past the delay: the Send SMS is never dispatched
    assert stack.commands_of("sup-1") == []
    assert stack.commands_of("sup-2") == []
    assert stack.decisions_of("sup-1") == [("suppress-flow", "not_enrolled", "suppressed")]
    assert stack.decisions_of("sup-2")[-1] == ("suppress-flow", "unenrolled", "suppressed")


def test_disabled_workflow(stack: EnrollerStack) -> None:
    s = stack.settings
    emit(s, "dis-1", plan="pro")
    stack.wait_decision("dis-1", "not_enrolled")
    assert stack.decisions_of("dis-1") == [("disabled-flow", "not_enrolled", "workflow_disabled")]

    emit(s, "tog-1", plan="basic")
    stack.wait_decision("tog-1", "enrolled")
    publish_definitions(s, [{**TOGGLE, "spec": {**TOGGLE["spec"], "enabled": False}}], revision=2)
    # After the delay: the marketing-status write is skipped, the Send SMS goes to the runner
    # (which records it as skipped: workflow_disabled).
    sms = stack.command("tog-1", 2, timeout_s=15)
    assert (sms.action.type, sms.workflow_revision) == ("send_sms", 2)
    assert [c.step for c in stack.commands_of("tog-1")] == [2]
    emit(s, "tog-2", plan="basic")
    stack.wait_decision("tog-2", "not_enrolled")
    assert stack.decisions_of("tog-2") == [("toggle-flow", "not_enrolled", "workflow_disabled")]


def test_poison_records_are_dead_lettered_and_good_ones_behind_them_handled(
    stack: EnrollerStack,
) -> None:
    s = stack.settings
    producer = make_producer(s)
    try:
        changes, results = s.topic(CONTACT_CHANGES), s.topic(ACTION_RESULTS)
        producer.send(changes, key=b"acme:p-1", value=b"\xff\xfe not json")
        producer.send(changes, key=b"acme:p-2", value=b'{"event_type": "contact.changed"}')
        wrong_key = ContactChange(account_id="acme", contact_id="p-3", properties={"a": 1})
        producer.send(changes, key=b"acme:p-999", value=wrong_key.model_dump_json().encode())
        producer.send(
            results,
            key=b"acme:p-4",
            value=(
                b'{"event_type": "action.completed", "action_id": "x", "account_id": "acme",'
                b' "contact_id": "p-4", "workflow_id": "order-flow", "enrollment_id": "bogus",'
                b' "step": 0, "outcome": "done"}'
            ),
        )
        producer.flush(10)
    finally:
        producer.close()
    emit(s, "p-ok", lifecyclestage="customer")

    stack.command("p-ok", 0)  # the good record behind the poison is handled
    letters = stack.letters.wait(
        lambda items: (
            (found := [d for d in items if (d.key or "").startswith("acme:p-")])
            and len(found) >= 4
            and found
        ),
        what="four dead letters",
    )
    by_key = {d.key: d for d in letters}
    assert set(by_key) == {"acme:p-1", "acme:p-2", "acme:p-999", "acme:p-4"}
    assert all(d.service == "enroller" for d in letters)
    assert by_key["acme:p-1"].topic == changes
    assert by_key["acme:p-1"].value_encoding == "base64"
    assert "malformed JSON" in by_key["acme:p-1"].reason
    assert "account_id" in by_key["acme:p-2"].reason
    assert "not the contact key" in by_key["acme:p-999"].reason
    assert by_key["acme:p-4"].topic == results
    assert "not an enrollment" in by_key["acme:p-4"].reason
    assert all(d.offset >= 0 and d.partition >= 0 for d in letters)


def test_enroll_existing_when_a_workflow_is_turned_on(stack: EnrollerStack) -> None:
    s = stack.settings
    before = stack.handled_changes()
    emit(s, "ex-1", tier="platinum")
    emit(s, "ex-2", tier="silver")
    deadline = time.monotonic() + 20
    while stack.handled_changes() < before + 2:
        assert time.monotonic() < deadline, "contact changes not handled"
        time.sleep(0.2)
    publish_definitions(s, [EXISTING])
    stack.wait_decision("ex-1", "enrolled")
    assert stack.decisions_of("ex-1") == [("existing-flow", "enrolled", "enroll_existing")]
    emit(s, "ex-3", tier="platinum")  # a new contact after the turn-on: the usual trigger
    stack.wait_decision("ex-3", "enrolled")
    assert stack.decisions_of("ex-3") == [("existing-flow", "enrolled", "criteria_met")]
    assert stack.decisions_of("ex-2") == []


def test_health_and_metrics(stack: EnrollerStack) -> None:
    assert stack.enroller.get("/healthz").replace(" ", "") == '{"ok":true}'
    metrics = stack.enroller.get("/metrics")
    assert "smsflow_enroller_records_total" in metrics
    assert "smsflow_enroller_decisions_total" in metrics


def test_older_changes_published_again_re_enroll_no_one_and_regress_nothing(
    stack: EnrollerStack,
) -> None:
    """Issue 10's replay: older changes re-published after newer ones, beyond the window of
    remembered change ids, and as new records carrying the old ``occurred_at``."""
    s = stack.settings
    old = ContactChange(
        account_id="acme", contact_id="rp-1", properties={"rank": "gold", "firstname": "Old"}
    )
    produce(s, CONTACT_CHANGES, [old])
    answer(s, stack.command("rp-1", 0))
    stack.wait_decision("rp-1", "completed")
    newer = ContactChange(
        account_id="acme", contact_id="rp-1", properties={"rank": "silver", "firstname": "New"}
    )
    fillers = [
        ContactChange(account_id="acme", contact_id="rp-1", properties={"visits": n})
        for n in range(30)  # more than the enroller remembers change ids of
    ]
    produce(s, CONTACT_CHANGES, [newer, *fillers])
    produce(s, CONTACT_CHANGES, [old, old.model_copy(update={"event_id": "rp-1-again"})])
    emit(s, "rp-1", probe="now")  # a fresh change, to read the contact as the enroller has it

    probe = stack.actions.wait(
        lambda items: [
            c for c in items if c.contact_id == "rp-1" and c.workflow_id == "probe-flow"
        ],
        what="the probe's command",
    )[0]
    assert probe.contact["rank"] == "silver"
    assert probe.contact["firstname"] == "New"
    assert probe.contact["visits"] == 29
    stack.events.settle(1.0)
    assert [d for d in stack.decisions_of("rp-1") if d[0] == "replay-flow"] == [
        ("replay-flow", "enrolled", "criteria_met"),
        ("replay-flow", "completed", None),
    ]
    assert [c.workflow_id for c in stack.commands_of("rp-1")] == ["replay-flow", "probe-flow"]
