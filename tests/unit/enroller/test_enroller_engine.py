"""The enroller's decisions on whole record sequences: enroll, ordered dispatch, delays, ends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.actions import ActionOutcome
from schemas.definitions import DefinitionApplied
from schemas.enrollment import action_id, enrollment_id
from services.enroller.engine import InvalidRecord
from services.enroller.state import Status
from tests.unit.enroller.builders import change, definitions, result, workflow
from tests.unit.enroller.harness import T0, Harness

FLOW = "welcome-flow"
EID = enrollment_id("acme", FLOW, "1001", 1)


def harness(*workflows: object) -> Harness:
    return Harness(definitions(*(workflows or (workflow(),))))  # type: ignore[arg-type]


def marketable(source: str = FLOW) -> object:
    return change(hs_marketable_status="true").model_copy(update={"source": f"workflow:{source}"})


def test_enroll_then_actions_strictly_in_order_then_completed() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer", firstname="Aino"))
    assert h.decisions() == [(FLOW, "enrolled", "criteria_met")]
    assert [c.step for c in h.commands] == [0]
    first = h.commands[0]
    # A8: the action id is the workflow action's stable id, not its position.
    assert first.action.id is not None
    assert first.action.id.startswith("manage-subscription-")
    assert first.action_id == action_id(EID, first.action.id)
    assert first.enrollment_id == EID
    assert first.action.type == "manage_subscription"
    assert first.contact == {"lifecyclestage": "customer", "firstname": "Aino"}

    # Nothing more is sent until the result of step 0 is in.
    h.change(change(firstname="Aino-Maria"))
    assert len(h.commands) == 1

    h.result(result(first))
    assert [c.step for c in h.commands] == [0, 1]
    assert h.commands[1].action.type == "set_marketing_contact_status"

    # Step 1 writes hs_marketable_status; the next step (a 5-minute delay) is entered.
    h.result(result(h.commands[1], contact_change=marketable()))  # type: ignore[arg-type]
    state = h.state()
    assert state is not None
    assert state.properties["hs_marketable_status"] == "true"
    enrollment = state.enrollments[FLOW]
    assert (enrollment.status, enrollment.due) == (Status.DELAYED, T0 + 300)
    assert str(enrollment.step).startswith("delay-")
    assert len(h.commands) == 2  # a delay is never sent to the action runner

    h.tick(T0 + 299)
    assert len(h.commands) == 2
    h.tick(T0 + 300)
    sms = h.commands[2]
    assert (sms.step, sms.action.type) == (3, "send_sms")
    # The Send SMS sees the marketing status written by the earlier step.
    assert sms.contact["hs_marketable_status"] == "true"

    h.result(result(sms))
    assert h.decisions()[-1] == (FLOW, "completed", None)
    state = h.state()
    assert state is not None
    assert FLOW not in state.enrollments
    assert state.sequences == {FLOW: 1}


def test_property_write_is_applied_before_the_next_step_and_its_echo_is_a_no_op() -> None:
    h = harness(workflow(actions=[{"type": "set_marketing_contact_status", "marketing": True},
                                  {"type": "send_sms", "message": "welcome"}]))  # fmt: skip
    h.change(change(lifecyclestage="customer"))
    write = marketable()
    h.result(result(h.commands[0], contact_change=write))  # type: ignore[arg-type]
    assert h.commands[1].contact["hs_marketable_status"] == "true"
    # The same change arrives later on contact-changes: nothing happens.
    effects = h.change(write)  # type: ignore[arg-type]
    assert not effects.dirty
    assert [n.event for n in effects.notes] == ["change_duplicate"]


def test_a_workflow_write_can_enroll_the_contact_in_another_workflow() -> None:
    marketing = workflow(
        "marketing-flow",
        criteria=[[{"property": "hs_marketable_status", "operator": "eq", "value": True}]],
        actions=[{"type": "send_sms", "message": "welcome"}],
    )
    h = harness(workflow(), marketing)
    h.change(change(lifecyclestage="customer"))
    h.result(result(h.commands[0]))
    h.result(result(h.commands[1], contact_change=marketable()))  # type: ignore[arg-type]
    assert ("marketing-flow", "enrolled", "criteria_met") in h.decisions()
    assert h.commands[-1].workflow_id == "marketing-flow"


def test_replayed_change_does_not_enroll_twice() -> None:
    h = harness()
    customer = change(lifecyclestage="customer")
    h.change(customer)
    h.change(customer)
    assert len(h.commands) == 1
    assert [d for d in h.decisions() if d[1] == "enrolled"] == [(FLOW, "enrolled", "criteria_met")]


def test_duplicate_and_stale_results_are_ignored() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer"))
    step0 = h.commands[0]
    h.result(result(step0))
    effects = h.result(result(step0))  # a redelivery of the result of step 0
    assert [n.event for n in effects.notes] == ["result_ignored"]
    assert not effects.dirty
    assert [c.step for c in h.commands] == [0, 1]


def test_deferred_action_is_resent_at_retry_at_with_the_same_action_id() -> None:
    h = harness(workflow(actions=[{"type": "send_sms", "message": "welcome"}]))
    h.change(change(lifecyclestage="customer"))
    first = h.commands[0]
    retry_at = datetime.fromtimestamp(T0 + 3600, UTC)
    h.result(result(first, ActionOutcome.DEFERRED, retry_at=retry_at))
    state = h.state()
    assert state is not None
    assert state.enrollments[FLOW].status is Status.DEFERRED
    h.tick(T0 + 3599)
    assert len(h.commands) == 1
    h.change(change(firstname="Late"))
    h.tick(T0 + 3600)
    again = h.commands[1]
    assert (again.action_id, again.attempt) == (first.action_id, 2)
    assert again.event_id != first.event_id
    assert again.contact["firstname"] == "Late"  # a fresh snapshot
    h.result(result(again))
    assert h.decisions()[-1][1] == "completed"


def test_failed_action_moves_on_to_the_next_step() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer"))
    effects = h.result(result(h.commands[0], ActionOutcome.FAILED, reason="boom"))
    assert [n.event for n in effects.notes] == ["action_failed"]
    assert h.commands[-1].step == 1


def test_deleted_contact_is_unenrolled_and_never_reuses_an_enrollment_id() -> None:
    h = harness(workflow(reenroll_on=["lifecyclestage"]))
    h.change(change(lifecyclestage="customer"))
    h.change(change(deleted=True))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "contact_deleted")
    state = h.state()
    assert state is not None
    assert state.deleted
    assert state.properties == {}
    h.result(result(h.commands[0]))  # the action that was out when it was deleted
    assert len(h.commands) == 1
    h.change(change(lifecyclestage="customer"))  # created again
    assert h.commands[-1].enrollment_id == enrollment_id("acme", FLOW, "1001", 2)


def test_suppression_blocks_enrollment_and_unenrolls_an_enrolled_contact() -> None:
    vip = [[{"property": "vip", "operator": "eq", "value": True}]]
    h = harness(workflow(suppression=vip))
    h.change(change("1", lifecyclestage="customer", vip=True))
    assert h.decisions() == [(FLOW, "not_enrolled", "suppressed")]
    assert h.commands == []
    h.change(change("1", vip=False))  # leaving suppression does not enroll
    assert h.commands == []

    h.change(change(lifecyclestage="customer"))
    h.result(result(h.commands[0]))
    h.change(change(vip=True))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "suppressed")
    h.result(result(h.commands[1]))  # the step that was out: ignored
    assert len(h.commands) == 2


def test_suppression_added_by_an_edit_unenrolls_before_the_next_step() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer", vip=True))
    h.result(result(h.commands[0]))
    vip = [[{"property": "vip", "operator": "eq", "value": True}]]
    h.definitions.apply(DefinitionApplied(document=workflow(suppression=vip), revision=2))
    h.result(result(h.commands[1]))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "suppressed")
    assert len(h.commands) == 2


def test_unenroll_when_criteria_unmet() -> None:
    h = harness(workflow(unenroll_when_criteria_unmet=True))
    h.change(change(lifecyclestage="customer"))
    h.change(change(lifecyclestage="lead"))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "criteria_unmet")


def test_reenrollment_only_on_a_transition_with_a_trigger_property() -> None:
    h = harness(workflow(reenroll_on=["lifecyclestage"], actions=[{"type": "delay", "seconds": 1}]))
    h.change(change(lifecyclestage="customer"))
    h.tick(T0 + 1)
    assert h.decisions()[-1] == (FLOW, "completed", None)
    h.change(change(lifecyclestage="customer", firstname="x"))  # still matching: no transition
    assert h.decisions()[-1] == (FLOW, "completed", None)
    h.change(change(lifecyclestage="lead"))
    h.change(change(lifecyclestage="customer"))
    assert h.decisions()[-1] == (FLOW, "reenrolled", "reenroll_trigger:lifecyclestage")
    state = h.state()
    assert state is not None
    assert state.enrollments[FLOW].sequence == 2


def test_disabled_workflow_enrolls_nobody_and_in_flight_enrollments_skip_property_writes() -> None:
    h = harness(workflow(enabled=False))
    h.change(change("2", lifecyclestage="customer"))
    assert h.decisions() == [(FLOW, "not_enrolled", "workflow_disabled")]
    assert h.commands == []

    h.definitions.apply(DefinitionApplied(document=workflow(), revision=2))
    h.change(change(lifecyclestage="customer"))
    h.definitions.apply(DefinitionApplied(document=workflow(enabled=False), revision=3))
    effects = h.result(result(h.commands[-1]))
    # set_marketing_contact_status is skipped here; the delay is still entered.
    assert [(n.event, n.fields["reason"]) for n in effects.notes] == [
        ("action_skipped", "workflow_disabled")
    ]
    state = h.state()
    assert state is not None
    assert state.enrollments[FLOW].status is Status.DELAYED
    h.tick(T0 + 300)
    # send_sms is dispatched: the action runner records it as skipped (workflow_disabled).
    assert (h.commands[-1].action.type, h.commands[-1].workflow_revision) == ("send_sms", 3)


def test_deleted_workflow_ends_its_enrollments_at_the_next_step() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer"))
    with h.definitions.lock:
        h.definitions.catalog.remove(f"Workflow:acme:{FLOW}")
    h.definitions.on_change(None, f"Workflow:acme:{FLOW}")
    h.result(result(h.commands[0]))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "workflow_deleted")


@pytest.mark.parametrize(
    ("value", "due"),
    [
        ("2027-01-20", datetime(2027, 1, 19, 22, 0, tzinfo=UTC).timestamp()),  # Helsinki midnight
        ("2027-01-20T12:00:00Z", datetime(2027, 1, 20, 12, tzinfo=UTC).timestamp()),
        ("1800003600000", T0 + 3600),  # epoch milliseconds
        ("2020-01-01", None),  # in the past: continue at once
        (None, None),  # no value: continue at once
    ],
)
def test_delay_until_a_date_property(value: str | None, due: float | None) -> None:
    h = harness(
        workflow(
            actions=[
                {"type": "delay", "until_property": "renewal"},
                {"type": "send_sms", "message": "welcome"},
            ]
        )
    )
    h.change(change(lifecyclestage="customer", renewal=value))
    state = h.state()
    assert state is not None
    if due is None:
        assert [c.step for c in h.commands] == [1]
    else:
        assert h.commands == []
        assert state.enrollments[FLOW].due == pytest.approx(due)


def test_restart_resends_only_commands_still_waiting_for_a_result() -> None:
    h = harness()
    h.change(change(lifecyclestage="customer"))
    resent = h.restart().commands
    assert [(c.action_id, c.event_id) for c in resent] == [
        (h.commands[0].action_id, h.commands[0].event_id)
    ]
    h.result(result(h.commands[-1]))
    h.result(result(h.commands[-1]))  # now inside the delay
    assert h.restart().commands == []


def test_enroll_existing_enrolls_matching_contacts_once() -> None:
    flow = workflow(enroll_existing=True)
    h = harness(workflow(enabled=False))
    h.change(change(lifecyclestage="customer"))
    h.definitions.apply(DefinitionApplied(document=flow, revision=2))
    compiled = h.definitions.index().workflow("acme", FLOW)
    assert compiled is not None
    h.existing(compiled)
    assert h.decisions()[-1] == (FLOW, "enrolled", "enroll_existing")
    h.existing(compiled)
    assert len(h.commands) == 1
    assert h.existing(compiled, key="acme:404").empty  # unknown contact: nothing


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (lambda c: result(c).model_copy(update={"contact_id": "2"}), "under key"),
        (lambda c: result(c).model_copy(update={"enrollment_id": "acme/x/1001/1"}), "not an enr"),
        (lambda c: result(c).model_copy(update={"action_id": "acme/x/1001/1#a"}), "not an action"),
    ],
)
def test_results_that_cannot_belong_to_the_contact_are_invalid(record: object, reason: str) -> None:
    h = harness()
    h.change(change(lifecyclestage="customer"))
    bad = record(h.commands[0])  # type: ignore[operator]
    with pytest.raises(InvalidRecord, match=reason):
        h._run("acme:1001", lambda e: e.apply_result(bad))


def test_change_under_another_key_is_invalid() -> None:
    h = harness()
    with pytest.raises(InvalidRecord):
        h._run("acme:2", lambda e: e.apply_change(change(lifecyclestage="customer")))


# ---------------------------------------------------------------- replays (hypothesis)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("change"), st.sampled_from(["lead", "customer", None]), st.booleans()),
        st.tuples(st.just("answer"), st.sampled_from(list(ActionOutcome)), st.just(False)),
        st.tuples(st.just("tick"), st.integers(0, 4000), st.just(False)),
    ),
    max_size=25,
)


def _play(ops: list[tuple[str, object, bool]], twice: bool) -> Harness:
    vip = [[{"property": "vip", "operator": "eq", "value": True}]]
    h = harness(workflow(reenroll_on=["lifecyclestage"], suppression=vip))
    clock = T0
    for number, (op, arg, flag) in enumerate(ops):
        if op == "change":
            moment = datetime.fromtimestamp(T0 + number, UTC)  # part of the state: fixed
            record = change(lifecyclestage=arg, vip=flag).model_copy(
                update={"event_id": f"c{number}", "occurred_at": moment}
            )
            for _ in range(1 + twice):
                h.change(record)
        elif op == "answer" and h.commands:
            retry = datetime.fromtimestamp(clock + 600, UTC)
            answer = result(h.commands[-1], arg, retry_at=retry)  # type: ignore[arg-type]
            answer = answer.model_copy(update={"event_id": f"r{number}"})
            for _ in range(1 + twice):
                h.result(answer)
        elif op == "tick":
            clock += int(arg)  # type: ignore[call-overload]
            for _ in range(1 + twice):
                h.tick(clock)
    return h


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_every_record_handled_twice_changes_nothing(ops: list[tuple[str, object, bool]]) -> None:
    once, twice = _play(ops, twice=False), _play(ops, twice=True)
    assert [(c.event_id, c.action_id, c.attempt) for c in twice.commands] == [
        (c.event_id, c.action_id, c.attempt) for c in once.commands
    ]
    assert [e.event_id for e in twice.events] == [e.event_id for e in once.events]
    assert twice.store == once.store


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_each_step_is_dispatched_once_and_in_order(ops: list[tuple[str, object, bool]]) -> None:
    h = _play(ops, twice=False)
    sent = [(c.action_id, c.attempt) for c in h.commands]
    assert len(sent) == len(set(sent))
    by_enrollment: dict[str, list[int]] = {}
    for command in h.commands:
        if command.attempt == 1:
            by_enrollment.setdefault(command.enrollment_id, []).append(command.step)
    for steps in by_enrollment.values():
        assert steps == sorted(steps)
    active = h.state()
    if active is not None:
        assert all(e.status in Status for e in active.enrollments.values())
