"""Commands from the enroller to the action runner, and their results."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.contacts import ContactChange, PropertyValue
from schemas.definitions import Action
from schemas.envelope import Event, Id, contact_key


class ActionCommand(Event):
    """Run one action of an enrollment. Re-sent with the same ``action_id`` after a deferral.

    ``action_id`` is ``{enrollment_id}#{the workflow action's id}`` (``action.id`` holds the
    latter); ``step`` is the action's position in the revision it was sent from, for people.
    """

    event_type: Literal["action.requested"] = "action.requested"
    action_id: str
    account_id: Id
    contact_id: Id
    workflow_id: Id
    workflow_revision: int = 1
    enrollment_id: str
    step: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1)
    action: Action
    # The contact as the enroller knows it when dispatching, so consent and marketing
    # status written by earlier steps are visible to this one.
    contact: dict[str, PropertyValue] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)

    @property
    def step_id(self) -> str:
        """The workflow action's stable id (A8)."""
        return self.action.id or self.action_id.rpartition("#")[2]


class ActionOutcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # e.g. an SMS gate failed; the enrollment goes on
    DEFERRED = "deferred"  # run the same command again at ``retry_at`` (quiet hours)
    FAILED = "failed"  # the action could not run (unknown type, invalid command)


class ActionResult(Event):
    event_type: Literal["action.completed"] = "action.completed"
    action_id: str
    account_id: Id
    contact_id: Id
    workflow_id: Id
    enrollment_id: str
    step: int = Field(ge=0)
    outcome: ActionOutcome
    reason: str | None = None
    retry_at: AwareDatetime | None = None
    # A branch action (run by the enroller, which records it here too): the path taken.
    branch: str | None = None
    # A property write made by the action (also published on contact-changes with the same
    # event_id): the enroller applies it before dispatching the next step.
    contact_change: ContactChange | None = None

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)
