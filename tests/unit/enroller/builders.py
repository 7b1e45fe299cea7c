"""Small builders of workflows, changes and results for the enroller's unit tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied, Workflow
from services.enroller.definitions import Definitions
from services.enroller.index import CompiledWorkflow, WorkflowIndex, compile_workflow
from tests.documents import MARKETING, SEND, SUBSCRIBE

CUSTOMER = [[{"property": "lifecyclestage", "operator": "is_any_of", "values": ["customer"]}]]
DESIGN_ACTIONS: list[dict[str, Any]] = [SUBSCRIBE, MARKETING, {"type": "delay", "minutes": 5}, SEND]


def workflow(
    workflow_id: str = "welcome-flow",
    *,
    account: str = "acme",
    enabled: bool = True,
    criteria: list[list[dict[str, Any]]] | None = None,
    reenroll_on: list[str] | None = None,
    enroll_existing: bool = False,
    unenroll_when_criteria_unmet: bool = False,
    suppression: list[list[dict[str, Any]]] | None = None,
    actions: list[dict[str, Any]] | None = None,
) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "Workflow",
            "metadata": {"id": workflow_id, "account": account},
            "spec": {
                "enabled": enabled,
                "enrollment": {
                    "criteria": CUSTOMER if criteria is None else criteria,
                    "reenroll_on": reenroll_on or [],
                    "enroll_existing": enroll_existing,
                    "unenroll_when_criteria_unmet": unenroll_when_criteria_unmet,
                },
                "suppression": suppression or [],
                "actions": DESIGN_ACTIONS if actions is None else actions,
            },
        }
    )


def compiled(**kwargs: Any) -> CompiledWorkflow:
    return compile_workflow(workflow(**kwargs))


def definitions(*workflows: Workflow, time_zone: str = "Europe/Helsinki") -> Definitions:
    held = Definitions()
    held.apply(
        DefinitionApplied.model_validate(
            {
                "document": {
                    "apiVersion": "smsflow/v1",
                    "kind": "Account",
                    "metadata": {"id": "acme"},
                    "spec": {"sms_access": True, "sender": "+358451234567", "time_zone": time_zone},
                }
            }
        )
    )
    for wf in workflows:
        held.apply(DefinitionApplied(document=wf))
    return held


def index_of(*workflows: Workflow) -> WorkflowIndex:
    return definitions(*workflows).index()


def change(
    contact: str = "1001", *, account: str = "acme", deleted: bool = False, **properties: Any
) -> ContactChange:
    return ContactChange(
        account_id=account, contact_id=contact, properties=properties, deleted=deleted
    )


def result(
    command: ActionCommand,
    outcome: ActionOutcome | str = ActionOutcome.DONE,
    *,
    retry_at: datetime | None = None,
    contact_change: ContactChange | None = None,
    reason: str | None = None,
) -> ActionResult:
    return ActionResult(
        action_id=command.action_id,
        account_id=command.account_id,
        contact_id=command.contact_id,
        workflow_id=command.workflow_id,
        enrollment_id=command.enrollment_id,
        step=command.step,
        outcome=ActionOutcome(outcome),
        retry_at=retry_at,
        contact_change=contact_change,
        reason=reason,
    )
