"""Workflow revisions while contacts are inside: progress by stable action id (A8)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.actions import ActionOutcome
from schemas.definitions import DefinitionApplied, Workflow, action_ids
from services.enroller.plan import compile_plan
from services.enroller.state import Enrollment, Status, encode_state
from tests.unit.enroller.builders import change, definitions, result, workflow
from tests.unit.enroller.harness import T0, Harness

FLOW = "welcome-flow"


def send(message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "send_sms", "message": message, **extra}


def delay(seconds: int, **extra: Any) -> dict[str, Any]:
    return {"type": "delay", "seconds": seconds, **extra}


def revise(h: Harness, actions: list[dict[str, Any]], revision: int = 2) -> None:
    h.definitions.apply(DefinitionApplied(document=workflow(actions=actions), revision=revision))


def sent_messages(h: Harness) -> list[str]:
    return [c.action.message for c in h.commands if c.action.type == "send_sms"]  # type: ignore[union-attr]


def enroll(actions: list[dict[str, Any]]) -> Harness:
    h = Harness(definitions(workflow(actions=actions)))
    h.change(change(lifecyclestage="customer"))
    return h


def test_derived_ids_follow_content_not_position() -> None:
    before = action_ids(workflow(actions=[send("a"), delay(20), send("b")]).spec.actions)
    after = action_ids(
        workflow(actions=[send("y"), send("z"), send("a"), delay(20), send("b")]).spec.actions
    )
    assert after[2:] == before
    assert len(set(after)) == 5
    assert all(i.startswith(("send-sms-", "delay-")) for i in after)


def test_repeated_actions_get_numbered_ids_and_written_ids_are_kept() -> None:
    ids = action_ids(workflow(actions=[send("a"), send("a"), send("b", id="hello")]).spec.actions)
    assert ids[1] == f"{ids[0]}-2"
    assert ids[2] == "hello"
    # A derived id never takes one an author wrote.
    first = ids[0]
    ids = action_ids(
        workflow(actions=[send("a"), send("a"), send("b", id=f"{first}-2")]).spec.actions
    )
    assert ids == [first, f"{first}-3", f"{first}-2"]


def test_an_id_written_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match="'hi' is used by more than one action"):
        workflow(actions=[send("a", id="hi"), delay(5, id="hi")])
    with pytest.raises(ValueError, match="should match pattern"):
        workflow(actions=[send("a", id="Not_Valid")])


def test_plan_links_each_step_to_the_next() -> None:
    plan = compile_plan(workflow(actions=[send("a", id="a"), delay(5, id="d")]).spec.actions)
    assert plan.first == "a"
    steps = [plan.steps[i] for i in plan.order]
    assert [(s.id, s.position, s.next) for s in steps] == [("a", 0, "d"), ("d", 1, None)]
    assert plan.steps["a"].action.id == "a"
    assert plan.after(["a"]) == "d"
    assert plan.after(["gone", "a", "also-gone"]) == "d"
    assert plan.after(["gone"]) == "a"


def test_inserting_before_a_waiting_contact_sends_nothing_twice_and_nothing_new() -> None:
    """The issue's scenario: [A, delay, B]; during the delay Y and Z go before A."""
    h = enroll([send("a"), delay(20), send("b")])
    h.result(result(h.commands[-1]))
    assert h.state().enrollments[FLOW].status is Status.DELAYED  # type: ignore[union-attr]
    revise(h, [send("y"), send("z"), send("a"), delay(20), send("b")])
    h.tick(T0 + 20)
    h.result(result(h.commands[-1]))
    assert sent_messages(h) == ["a", "b"]
    assert h.decisions()[-1] == (FLOW, "completed", None)
    # The SMS keeps its action id (and so its idempotency key) across the revision.
    assert h.commands[-1].action_id.endswith(
        action_ids(workflow(actions=[send("b")]).spec.actions)[0]
    )


def test_inserting_before_an_awaited_action_continues_after_it() -> None:
    h = enroll([send("a"), send("b")])
    revise(h, [send("y"), send("a"), send("x"), send("b")])
    h.result(result(h.commands[-1]))  # the result of A, sent from the old revision
    h.result(result(h.commands[-1]))
    h.result(result(h.commands[-1]))
    assert sent_messages(h) == ["a", "x", "b"]


def test_a_deferred_action_that_still_exists_is_retried_in_the_new_revision() -> None:
    h = enroll([send("a"), send("b")])
    retry = datetime.fromtimestamp(T0 + 600, UTC)
    h.result(result(h.commands[-1], ActionOutcome.DEFERRED, retry_at=retry))
    revise(h, [send("y"), send("a"), send("b")])
    h.tick(T0 + 600)
    again = h.commands[-1]
    assert (again.action.message, again.attempt) == ("a", 2)  # type: ignore[union-attr]
    assert again.action_id == h.commands[0].action_id
    h.result(result(again))
    assert sent_messages(h) == ["a", "a", "b"]  # A twice: the deferral and its retry


def test_a_removed_deferred_action_is_not_run_and_the_next_survivor_is() -> None:
    h = enroll([send("a"), send("b"), send("c")])
    h.result(result(h.commands[-1]))
    retry = datetime.fromtimestamp(T0 + 600, UTC)
    h.result(result(h.commands[-1], ActionOutcome.DEFERRED, retry_at=retry))  # B deferred
    revise(h, [send("a"), send("c")])
    h.tick(T0 + 600)
    assert sent_messages(h) == ["a", "b", "c"]  # B only as first sent, then C
    h.result(result(h.commands[-1]))
    assert h.decisions()[-1] == (FLOW, "completed", None)


def test_an_edited_delay_without_an_id_is_a_new_action_and_with_one_the_same() -> None:
    h = enroll([send("a"), delay(60), send("b")])
    h.result(result(h.commands[-1]))
    revise(h, [send("a"), delay(30), send("b")])  # another content: another derived id
    h.tick(T0 + 60)
    assert sent_messages(h) == ["a"]  # carries on after A, into the new 30 s delay
    h.tick(T0 + 90)
    assert sent_messages(h) == ["a", "b"]

    h = enroll([send("a"), delay(60, id="wait"), send("b")])
    h.result(result(h.commands[-1]))
    revise(h, [send("a"), delay(30, id="wait"), send("b")])  # the same action, edited
    h.tick(T0 + 60)
    assert sent_messages(h) == ["a", "b"]


def test_an_action_whose_result_is_out_when_removed_continues_after_the_last_survivor() -> None:
    h = enroll([send("a"), send("b"), send("c")])
    h.result(result(h.commands[-1]))
    b = h.commands[-1]
    revise(h, [send("a"), send("c")])
    h.result(result(b))
    assert sent_messages(h) == ["a", "b", "c"]


def test_moving_a_finished_action_later_never_runs_it_again() -> None:
    h = enroll([send("a"), send("b"), send("c")])
    h.result(result(h.commands[-1]))
    revise(h, [send("b"), send("c"), send("a")])
    h.result(result(h.commands[-1]))  # B
    h.result(result(h.commands[-1]))  # C
    assert sent_messages(h) == ["a", "b", "c"]
    assert h.decisions()[-1] == (FLOW, "completed", None)


def test_restart_with_the_awaited_action_removed_carries_on_instead_of_waiting_forever() -> None:
    h = enroll([send("a"), send("b")])
    revise(h, [send("b")])
    effects = h.restart()
    assert [c.action.message for c in effects.commands] == ["b"]  # type: ignore[union-attr]


def test_records_written_before_ids_are_read_by_position() -> None:
    wf: Workflow = workflow(actions=[send("a"), delay(60), send("b")])
    h = Harness(definitions(wf))
    h.change(change(lifecyclestage="customer"))
    state = h.state()
    assert state is not None
    state.enrollments[FLOW] = Enrollment(1, 1, Status.DELAYED, 1, T0 + 60)
    raw = encode_state(state)
    # The old encoding: five fields, the step a position.
    h.store["acme:1001"] = raw.replace(
        b',"delayed",1,1800000060.0,[]]', b',"delayed",1,1800000060.0]'
    )
    assert h.state().enrollments[FLOW].step == 1  # type: ignore[union-attr]
    h.tick(T0 + 60)
    assert sent_messages(h) == ["a", "b"]
