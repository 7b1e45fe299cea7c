"""HubSpot's enrollment rules, one table row per rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.enroller import rules
from services.enroller.rules import Kind, Reason
from tests.unit.enroller.builders import compiled

CUSTOMER = {"lifecyclestage": "customer"}
LEAD = {"lifecyclestage": "lead"}
VIP = [[{"property": "vip", "operator": "eq", "value": True}]]
STAGE = {"lifecyclestage"}

E, R = Kind, Reason
# (case, workflow options, before, after, changed, enrolled, times_enrolled, expected)
# fmt: off
ON_CHANGE: list[tuple[str, dict[str, Any], Any, dict[str, Any], set[str], bool, int, Any]] = [
    ("new contact that matches", {}, None, CUSTOMER, STAGE, False, 0,
     (E.ENROLL, R.CRITERIA_MET)),
    ("criteria become true", {}, LEAD, CUSTOMER, STAGE, False, 0,
     (E.ENROLL, R.CRITERIA_MET)),
    ("already matched before: no transition", {}, CUSTOMER, {**CUSTOMER, "x": 1}, {"x"},
     False, 0, None),
    ("does not match", {}, None, LEAD, STAGE, False, 0, None),
    ("disabled workflow", {"enabled": False}, LEAD, CUSTOMER, STAGE, False, 0,
     (E.NOT_ENROLLED, R.WORKFLOW_DISABLED)),
    ("suppressed", {"suppression": VIP}, LEAD, {**CUSTOMER, "vip": True}, STAGE, False, 0,
     (E.NOT_ENROLLED, R.SUPPRESSED)),
    ("enrolled once, no re-enrollment", {}, LEAD, CUSTOMER, STAGE, False, 1,
     (E.NOT_ENROLLED, R.ENROLLED_BEFORE)),
    ("re-enroll on a trigger property", {"reenroll_on": ["lifecyclestage"]}, LEAD, CUSTOMER,
     STAGE, False, 1, (E.REENROLL, R.REENROLL_TRIGGER)),
    ("re-enroll needs the trigger property to change", {"reenroll_on": ["score"]}, LEAD,
     CUSTOMER, STAGE, False, 2, (E.NOT_ENROLLED, R.NO_TRIGGER_CHANGED)),
    ("trigger changed but still matching: no transition", {"reenroll_on": ["score"]},
     {**CUSTOMER, "score": 1}, {**CUSTOMER, "score": 2}, {"score"}, False, 1, None),
    ("never re-enrolled while enrolled", {"reenroll_on": ["lifecyclestage"]}, LEAD, CUSTOMER,
     STAGE, True, 1, (E.NOT_ENROLLED, R.ALREADY_ENROLLED)),
    ("enrolled and still matching", {}, CUSTOMER, {**CUSTOMER, "x": 2}, {"x"}, True, 1, None),
    ("joins suppression while enrolled", {"suppression": VIP}, CUSTOMER,
     {**CUSTOMER, "vip": True}, {"vip"}, True, 1, (E.UNENROLL, R.SUPPRESSED)),
    ("leaving suppression does not enroll", {"suppression": VIP}, {**CUSTOMER, "vip": True},
     CUSTOMER, {"vip"}, False, 0, None),
    ("criteria unmet, unenroll asked", {"unenroll_when_criteria_unmet": True}, CUSTOMER, LEAD,
     STAGE, True, 1, (E.UNENROLL, R.CRITERIA_UNMET)),
    ("criteria unmet, unenroll not asked", {}, CUSTOMER, LEAD, STAGE, True, 1, None),
    ("a blank-matching workflow meets a new contact",
     {"criteria": [[{"property": "email", "operator": "is_unknown"}]]}, None,
     {"firstname": "A"}, {"firstname"}, False, 0, (E.ENROLL, R.CRITERIA_MET)),
]
# fmt: on


@pytest.mark.parametrize(
    ("options", "before", "after", "changed", "enrolled", "times", "expected"),
    [row[1:] for row in ON_CHANGE],
    ids=[row[0] for row in ON_CHANGE],
)
def test_on_change(
    options: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any],
    changed: set[str],
    enrolled: bool,
    times: int,
    expected: tuple[Kind, Reason] | None,
) -> None:
    verdict = rules.on_change(
        compiled(**options), before, after, changed, enrolled=enrolled, times_enrolled=times
    )
    assert (None if verdict is None else (verdict.kind, verdict.reason)) == expected


def test_reenroll_names_the_trigger() -> None:
    verdict = rules.on_change(
        compiled(reenroll_on=["score", "lifecyclestage"]),
        LEAD,
        CUSTOMER,
        STAGE,
        enrolled=False,
        times_enrolled=3,
    )
    assert verdict is not None
    assert verdict.detail == "lifecyclestage"


# (case, workflow options, properties, enrolled, times_enrolled, expected)
# fmt: off
ON_TURNED_ON: list[tuple[str, dict[str, Any], dict[str, Any], bool, int, Any]] = [
    ("matching, never enrolled", {"enroll_existing": True}, CUSTOMER, False, 0,
     (E.ENROLL, R.ENROLL_EXISTING)),
    ("enroll_existing off", {}, CUSTOMER, False, 0, None),
    ("not matching", {"enroll_existing": True}, LEAD, False, 0, None),
    ("already enrolled", {"enroll_existing": True}, CUSTOMER, True, 1, None),
    ("enrolled before", {"enroll_existing": True}, CUSTOMER, False, 1, None),
    ("disabled", {"enroll_existing": True, "enabled": False}, CUSTOMER, False, 0, None),
    ("suppressed", {"enroll_existing": True, "suppression": VIP}, {**CUSTOMER, "vip": "true"},
     False, 0, (E.NOT_ENROLLED, R.SUPPRESSED)),
]
# fmt: on


@pytest.mark.parametrize(
    ("options", "properties", "enrolled", "times", "expected"),
    [row[1:] for row in ON_TURNED_ON],
    ids=[row[0] for row in ON_TURNED_ON],
)
def test_on_turned_on(
    options: dict[str, Any],
    properties: dict[str, Any],
    enrolled: bool,
    times: int,
    expected: tuple[Kind, Reason] | None,
) -> None:
    verdict = rules.on_turned_on(
        compiled(**options), properties, enrolled=enrolled, times_enrolled=times
    )
    assert (None if verdict is None else (verdict.kind, verdict.reason)) == expected


def test_before_step() -> None:
    assert rules.before_step(None, CUSTOMER) == rules.Verdict(
        Kind.UNENROLL, Reason.WORKFLOW_DELETED
    )
    suppressing = compiled(suppression=VIP)
    assert rules.before_step(suppressing, {**CUSTOMER, "vip": True}) == rules.Verdict(
        Kind.UNENROLL, Reason.SUPPRESSED
    )
    assert rules.before_step(suppressing, CUSTOMER) is None


stages = st.sampled_from([None, "lead", "customer"])


@given(before=stages, after=stages, enrolled=st.booleans(), times=st.integers(0, 3))
def test_enrolls_only_on_a_transition_and_never_twice(
    before: str | None, after: str | None, enrolled: bool, times: int
) -> None:
    verdict = rules.on_change(
        compiled(reenroll_on=["lifecyclestage"]),
        {"lifecyclestage": before},
        {"lifecyclestage": after},
        STAGE,
        enrolled=enrolled,
        times_enrolled=times,
    )
    if verdict is not None and verdict.enrolls:
        assert before != "customer"
        assert after == "customer"
        assert not enrolled
