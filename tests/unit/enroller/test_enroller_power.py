"""Branches, goals, sending windows and day/time delays in the enroller's decisions (A8)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.actions import ActionOutcome
from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied
from schemas.sms import SmsStatus
from services.common.idempotency import sms_key
from services.enroller.state import Status
from tests.unit.enroller.builders import change, definitions, result, workflow
from tests.unit.enroller.harness import T0, Harness

FLOW = "welcome-flow"
VIP = [[{"property": "vip", "operator": "eq", "value": "true"}]]
GOLD = [[{"property": "tier", "operator": "eq", "value": "gold"}]]
CUSTOMER_GOAL = {"criteria": [[{"property": "goal", "operator": "eq", "value": "reached"}]]}


def send(message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "send_sms", "message": message, **extra}


def branch(*paths: tuple[str, Any, list[dict[str, Any]]], default: Any = (), **extra: Any) -> Any:
    return {
        "type": "branch",
        "branches": [{"name": n, "criteria": c, "actions": a} for n, c, a in paths],
        "default": list(default),
        **extra,
    }


def harness(actions: list[dict[str, Any]], **spec: Any) -> Harness:
    wf = workflow(actions=actions)
    if spec:
        wf = wf.model_validate(
            {**wf.model_dump(by_alias=True), "spec": {**wf.spec.model_dump(), **spec}}
        )
    return Harness(definitions(wf))


def sent(h: Harness) -> list[str]:
    return [c.action.message for c in h.commands if c.action.type == "send_sms"]  # type: ignore[union-attr]


def answer_all(h: Harness, limit: int = 10) -> None:
    for _ in range(limit):
        before = len(h.commands)
        h.result(result(h.commands[-1]))
        if len(h.commands) == before:
            return


def test_the_first_matching_branch_wins_else_the_default_and_the_workflow_goes_on() -> None:
    actions = [
        branch(("vip", VIP, [send("vip")]), ("gold", GOLD, [send("gold")]), default=[send("all")]),
        send("after"),
    ]
    for properties, expected in [
        ({"vip": "true", "tier": "gold"}, ["vip", "after"]),
        ({"tier": "gold"}, ["gold", "after"]),
        ({}, ["all", "after"]),
    ]:
        h = harness(actions)
        h.change(change(lifecyclestage="customer", **properties))
        answer_all(h)
        assert sent(h) == expected
        assert h.decisions()[-1] == (FLOW, "completed", None)


def test_a_branch_reads_a_property_written_earlier_in_the_same_workflow() -> None:
    h = harness(
        [
            {"type": "set_marketing_contact_status", "marketing": True},
            branch(
                ("marketable", [[{"property": "hs_marketable_status", "operator": "eq",
                                  "value": "true"}]], [send("yes")]),
                default=[send("no")],
            ),
        ]
    )  # fmt: skip
    h.change(change(lifecyclestage="customer"))
    write = ContactChange(
        account_id="acme",
        contact_id="1001",
        properties={"hs_marketable_status": "true"},
        source=f"workflow:{FLOW}",
    )
    h.result(result(h.commands[-1], contact_change=write))
    assert sent(h) == ["yes"]
    [taken] = [e for e in h.events if e.decision.value == "branched"]
    assert (taken.branch, taken.reason) == ("marketable", "branch:marketable")
    [recorded] = h.last.results
    assert (recorded.branch, recorded.outcome) == ("marketable", ActionOutcome.DONE)
    assert recorded.action_id == taken.action_id
    # Reading its own record back changes nothing.
    before = h.store["acme:1001"]
    assert h.result(recorded).commands == []
    assert h.store["acme:1001"] == before


def test_branches_nest_and_an_empty_path_goes_on_after_the_branch() -> None:
    inner = branch(("gold", GOLD, [send("vip-gold")]), default=[send("vip-other")])
    h = harness([branch(("vip", VIP, [inner, send("vip-end")])), send("end")])
    h.change(change(lifecyclestage="customer", vip="true", tier="gold"))
    answer_all(h)
    assert sent(h) == ["vip-gold", "vip-end", "end"]
    assert [e.branch for e in h.events if e.branch] == ["vip", "gold"]

    h = harness([branch(("vip", VIP, [inner, send("vip-end")])), send("end")])
    h.change(change(lifecyclestage="customer"))  # no vip: the empty default path
    answer_all(h)
    assert sent(h) == ["end"]
    assert [e.branch for e in h.events if e.branch] == ["default"]


def test_a_revision_keeps_a_contact_inside_a_branch_on_its_path_by_action_id() -> None:
    path = [send("one", id="one"), {"type": "delay", "seconds": 60, "id": "pause"}, send("two")]
    h = harness([branch(("vip", VIP, path), id="pick"), send("end", id="end")])
    h.change(change(lifecyclestage="customer", vip="true"))
    h.result(result(h.commands[-1]))  # "one" done; in the pause
    revised = [
        send("new-first"),
        branch(("vip", VIP, [send("one", id="one"), send("inserted"), *path[1:]]), id="pick"),
        send("end", id="end"),
    ]
    h.definitions.apply(DefinitionApplied(document=workflow(actions=revised), revision=2))
    h.tick(T0 + 60)
    answer_all(h)
    assert sent(h) == ["one", "two", "end"]


def test_a_goal_met_during_a_delay_ends_the_enrollment_and_nothing_more_is_sent() -> None:
    h = harness(
        [send("first"), {"type": "delay", "minutes": 5}, send("second")], goal=CUSTOMER_GOAL
    )
    h.change(change(lifecyclestage="customer"))
    h.result(result(h.commands[-1]))
    h.change(change(goal="reached"))
    assert h.decisions()[-1] == (FLOW, "unenrolled", "goal_met")
    h.tick(T0 + 3600)
    assert sent(h) == ["first"]
    state = h.state()
    assert state is not None
    assert FLOW not in state.enrollments


def test_a_goal_met_during_a_deferral_or_while_an_action_is_out() -> None:
    h = harness([send("first"), send("second")], goal=CUSTOMER_GOAL)
    h.change(change(lifecyclestage="customer"))
    retry = datetime.fromtimestamp(T0 + 600, UTC)
    h.result(result(h.commands[-1], ActionOutcome.DEFERRED, retry_at=retry))
    h.change(change(goal="reached"))
    h.tick(T0 + 600)
    assert sent(h) == ["first"]  # sent once (deferred), never again

    h = harness([send("first"), send("second")], goal=CUSTOMER_GOAL)
    h.change(change(lifecyclestage="customer"))
    h.change(change(goal="reached"))
    h.result(result(h.commands[-1]))  # the result of the action that was out
    assert sent(h) == ["first"]
    assert h.decisions()[-1] == (FLOW, "unenrolled", "goal_met")


def test_a_contact_meeting_the_goal_when_enrolled_leaves_before_any_action() -> None:
    h = harness([send("first")], goal=CUSTOMER_GOAL)
    h.change(change(lifecyclestage="customer", goal="reached"))
    assert h.decisions() == [(FLOW, "enrolled", "criteria_met"), (FLOW, "unenrolled", "goal_met")]
    assert h.commands == []


def test_outside_the_sending_window_an_sms_waits_and_says_so() -> None:
    # T0 is Friday 15 Jan 2027 08:00 UTC = 10:00 in Helsinki; the window is 11:00-12:00.
    window = {"days": ["fri"], "start": "11:00", "end": "12:00"}
    h = harness([send("first")], sending_window=window)
    h.change(
        change(
            lifecyclestage="customer", hs_timezone="Europe/Helsinki", mobilephone="+358401234567"
        )
    )
    assert h.commands == []
    enrollment = h.state().enrollments[FLOW]  # type: ignore[union-attr]
    opens = T0 + 3600
    assert (enrollment.status, enrollment.due) == (Status.DEFERRED, opens)
    [status] = h.last.statuses
    assert (status.status, status.reason) == (SmsStatus.DEFERRED, "sending_window")
    assert status.deferred_until == datetime.fromtimestamp(opens, UTC)
    assert status.to_masked is not None
    assert "+358401234567" not in status.to_masked
    assert status.idempotency_key is not None
    h.tick(opens)
    [command] = h.commands
    assert command.action.message == "first"  # type: ignore[union-attr]
    # The SMS the runner sends carries the key the deferred status named.
    key = sms_key("acme", FLOW, command.enrollment_id, command.step_id)
    assert status.idempotency_key == key


def test_delay_until_uses_the_recipients_zone() -> None:
    until = {"type": "delay", "until": {"weekday": "mon", "time": "09:00"}}
    h = harness([until, send("monday")])
    h.change(change(lifecyclestage="customer", hs_timezone="America/New_York"))
    enrollment = h.state().enrollments[FLOW]  # type: ignore[union-attr]
    # T0 is Friday 15 Jan 2027; Monday 18 Jan 09:00 in New York is 14:00 UTC.
    assert enrollment.due == datetime(2027, 1, 18, 14, 0, tzinfo=UTC).timestamp()
