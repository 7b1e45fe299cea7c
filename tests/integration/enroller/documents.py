"""Definitions for the enroller's integration tests (DESIGN A5 documents plus variations)."""

from __future__ import annotations

from typing import Any

from tests.samples import design_documents

SUBSCRIBE: dict[str, Any] = {
    "type": "manage_subscription",
    "channel": "sms",
    "subscription_type": "sms-marketing",
    "status": "subscribed",
    "legal_basis": "CONSENT_WITH_NOTICE",
    "legal_basis_explanation": "Ticked the SMS box at checkout",
    "processing_legal_basis": "PROCESS_AND_STORE",
}
MARKETING: dict[str, Any] = {"type": "set_marketing_contact_status", "marketing": True}
SEND: dict[str, Any] = {"type": "send_sms", "message": "welcome"}


def delay(seconds: int) -> dict[str, Any]:
    return {"type": "delay", "seconds": seconds}


def eq(prop: str, value: Any) -> list[list[dict[str, Any]]]:
    return [[{"property": prop, "operator": "eq", "value": value}]]


def workflow(
    workflow_id: str,
    criteria: list[list[dict[str, Any]]],
    actions: list[dict[str, Any]],
    **enrollment: Any,
) -> dict[str, Any]:
    enabled = enrollment.pop("enabled", True)
    suppression = enrollment.pop("suppression", [])
    return {
        "apiVersion": "smsflow/v1",
        "kind": "Workflow",
        "metadata": {"id": workflow_id, "account": "acme"},
        "spec": {
            "object_type": "contact",
            "enabled": enabled,
            "enrollment": {"criteria": criteria, **enrollment},
            "suppression": suppression,
            "actions": actions,
        },
    }


def account_and_message() -> list[dict[str, Any]]:
    """The Account and SmsMessage of DESIGN A5 (its Workflow is left out)."""
    return [d for d in design_documents() if d["kind"] != "Workflow"]
