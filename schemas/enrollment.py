"""Enrollment decisions (``enrollment-events``) and the ids that name enrollments and steps."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from schemas.envelope import Event, Id, contact_key


class EnrollmentDecision(StrEnum):
    ENROLLED = "enrolled"
    REENROLLED = "reenrolled"
    NOT_ENROLLED = "not_enrolled"
    UNENROLLED = "unenrolled"
    COMPLETED = "completed"
    BRANCHED = "branched"  # a branch action chose a path (``branch``); the enrollment goes on


def enrollment_id(account_id: str, workflow_id: str, contact_id: str, sequence: int) -> str:
    """Deterministic: the n-th enrollment of a contact in a workflow always has the same id."""
    return f"{account_id}/{workflow_id}/{contact_id}/{sequence}"


def action_id(enrollment: str, step: str) -> str:
    """One action of one enrollment: ``{enrollment_id}#{the workflow action's stable id}``."""
    return f"{enrollment}#{step}"


def step_of(action: str, enrollment: str) -> str | None:
    """The workflow action's id inside an ``action_id`` of ``enrollment``; None when it is
    not one of that enrollment's."""
    prefix = f"{enrollment}#"
    step = action.removeprefix(prefix)
    return step if action.startswith(prefix) and step else None


class EnrollmentEvent(Event):
    event_type: Literal["enrollment.changed"] = "enrollment.changed"
    account_id: Id
    contact_id: Id
    workflow_id: Id
    workflow_revision: int = 1
    decision: EnrollmentDecision
    enrollment_id: str | None = None
    sequence: int | None = None
    reason: str | None = None  # e.g. "criteria_met", "suppressed", "goal_met", "branch:vip"
    # For ``branched``: the branch action (``{enrollment_id}#{action id}``) and the path taken
    # (a branch's name, or "default").
    action_id: str | None = None
    branch: str | None = None

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)
