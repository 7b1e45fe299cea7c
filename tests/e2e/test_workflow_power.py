"""Branches, goals and sending windows through the whole stack (issue 12)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.actions import ActionResult
from schemas.contacts import ContactChange
from schemas.enrollment import EnrollmentEvent
from schemas.sms import SmsStatus
from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES, ENROLLMENT_EVENTS
from tests.e2e.definitions import SUBSCRIBE, account, message, workflow
from tests.e2e.stack import DevStack
from tests.support import produce, read_models

pytestmark = pytest.mark.e2e

ACCOUNT = "power"


def power_message(message_id: str) -> str:
    return message(ACCOUNT, message_id, f"Power {message_id}")


def flow(flow_id: str, trigger: str, extra: str, actions: str, subscribe: str = SUBSCRIBE) -> str:
    criteria = f"{{property: power_test, operator: eq, value: {trigger}}}"
    return workflow(ACCOUNT, flow_id, criteria, subscribe + actions, extra)


BRANCH = flow(
    "branch-flow",
    "branch",
    "",
    """    - id: pick
      type: branch
      branches:
        - {name: gold, criteria: [[{property: tier, operator: eq, value: gold}]],
           actions: [{type: send_sms, message: gold}]}
        - {name: marketable,
           criteria: [[{property: hs_marketable_status, operator: eq, value: "true"}]],
           actions: [{type: send_sms, message: marketable}]}
      default: [{type: send_sms, message: plain}]
""",
)
GOAL = flow(
    "goal-flow",
    "goal",
    "  goal: {criteria: [[{property: converted, operator: eq, value: 'yes'}]]}\n",
    """    - {type: send_sms, message: first}
    - {type: delay, seconds: 15}
    - {type: send_sms, message: second}
""",
)


def window_flow(start: str, end: str) -> str:
    return flow(
        "window-flow",
        "window",
        f'  sending_window: {{start: "{start}", end: "{end}"}}\n',
        "    - {type: send_sms, message: windowed}\n",
        subscribe="",  # the contact is subscribed already: the SMS itself meets the window
    )


def midday_zone(now: datetime) -> tuple[str, timedelta]:
    """A fixed-offset zone in which it is about noon now (so a short window never wraps)."""
    hours = (12 - now.hour + 12) % 24 - 12  # -12 .. 11
    # POSIX-style names invert the sign: Etc/GMT-3 is UTC+3.
    return f"Etc/GMT{-hours:+d}" if hours else "Etc/UTC", timedelta(hours=hours)


def change(contact: str, **properties: Any) -> ContactChange:
    return ContactChange(account_id=ACCOUNT, contact_id=contact, properties=properties)


def bodies_to(stack: DevStack, number: str) -> list[str]:
    """The message ids (``Power <id>``) the gateway accepted for ``number``, in order."""
    return [
        str(m["body"]).removeprefix("Power ").split()[0]
        for m in stack.gateway_messages()
        if m["to"] == number
    ]


def wait_for(stack: DevStack, probe: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
    return stack.wait(probe, what, timeout_s)


@pytest.fixture(scope="module")
def applied(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> DevStack:
    messages = ("gold", "marketable", "plain", "first", "second", "windowed")
    documents = [account(ACCOUNT), *(power_message(m) for m in messages), BRANCH, GOAL]
    result = stack.apply(tmp_path_factory.mktemp("power"), "---".join(documents))
    assert result.returncode == 0, result.stderr
    return stack


def test_a_branch_is_taken_by_property_including_one_written_earlier_in_the_workflow(
    applied: DevStack,
) -> None:
    stack = applied
    gold, other = "+358404440001", "+358404440002"
    produce(
        stack.settings,
        CONTACT_CHANGES,
        [
            change("br-gold", mobilephone=gold, tier="gold", power_test="branch"),
            # Not a marketing contact when enrolled: only the workflow's own write makes it one.
            change(
                "br-other", mobilephone=other, hs_marketable_status="false", power_test="branch"
            ),
        ],
    )
    wait_for(stack, lambda: bodies_to(stack, gold) and bodies_to(stack, other), "both SMS")
    time.sleep(3)
    assert bodies_to(stack, gold) == ["gold"]
    assert bodies_to(stack, other) == ["marketable"]

    events = read_models(stack.settings, ENROLLMENT_EVENTS, EnrollmentEvent)
    taken = {e.contact_id: e.branch for e in events if e.decision.value == "branched"}
    assert taken == {"br-gold": "gold", "br-other": "marketable"}
    results = read_models(stack.settings, ACTION_RESULTS, ActionResult)
    recorded = {r.contact_id: r.branch for r in results if r.branch is not None}
    assert recorded == taken


def test_a_goal_met_during_a_delay_sends_nothing_more(applied: DevStack) -> None:
    stack = applied
    number = "+358404440003"
    enroll = change("goal-1", mobilephone=number, power_test="goal")
    produce(stack.settings, CONTACT_CHANGES, [enroll])
    wait_for(stack, lambda: bodies_to(stack, number), "the first SMS")
    produce(stack.settings, CONTACT_CHANGES, [change("goal-1", converted="yes")])

    def goal_met() -> bool:
        events = read_models(stack.settings, ENROLLMENT_EVENTS, EnrollmentEvent)
        return any(e.contact_id == "goal-1" and e.reason == "goal_met" for e in events)

    wait_for(stack, goal_met, "goal_met on enrollment-events")
    time.sleep(20)  # past the 15 s delay
    assert bodies_to(stack, number) == ["first"]
    events = read_models(stack.settings, ENROLLMENT_EVENTS, EnrollmentEvent)
    assert [(e.decision.value, e.reason) for e in events if e.contact_id == "goal-1"] == [
        ("enrolled", "criteria_met"),
        ("unenrolled", "goal_met"),
    ]


def test_a_send_outside_the_sending_window_waits_for_it_to_open(
    applied: DevStack, tmp_path: Path
) -> None:
    stack = applied
    number = "+358404440004"
    zone, offset = midday_zone(datetime.now(UTC))
    # Subscribed and made a marketing contact by the account's subscribe-send workflow.
    customer = change("win-1", mobilephone=number, hs_timezone=zone, lifecyclestage="customer")
    produce(stack.settings, CONTACT_CHANGES, [customer])
    wait_for(stack, lambda: bodies_to(stack, number), "the welcome SMS")

    opens = (datetime.now(UTC) + timedelta(seconds=25)).replace(microsecond=0)
    local = opens + offset
    window = window_flow(f"{local:%H:%M:%S}", f"{local + timedelta(minutes=10):%H:%M:%S}")
    result = stack.apply(
        tmp_path, "---".join([account(ACCOUNT), power_message("windowed"), window])
    )
    assert result.returncode == 0, result.stderr
    produce(stack.settings, CONTACT_CHANGES, [change("win-1", power_test="window")])

    def deferred() -> Any:
        statuses = [e for e in stack.statuses() if e.contact_id == "win-1"]
        return [e for e in statuses if e.status is SmsStatus.DEFERRED]

    [held] = wait_for(stack, deferred, "the deferred status")
    assert held.reason == "sending_window"
    assert held.deferred_until == opens
    assert bodies_to(stack, number) == ["Hei"]  # the welcome only, so far

    def windowed() -> list[dict[str, Any]]:
        return [
            m
            for m in stack.gateway_messages()
            if m["to"] == number and str(m["body"]).startswith("Power windowed")
        ]

    [sent] = wait_for(stack, windowed, "the SMS once the window opens")
    received = datetime.fromisoformat(str(sent["received_at"]).replace("Z", "+00:00"))
    assert received >= opens
    assert sent["idempotency_key"] == held.idempotency_key
    latest = stack.latest()[(ACCOUNT, "win-1", "window-flow")]
    assert latest.status in (SmsStatus.SENT, SmsStatus.DELIVERED)
