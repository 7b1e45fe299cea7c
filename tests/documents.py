"""Definition documents for tests on the real broker, published as ``smsflow apply`` leaves
them on the definitions topic, and the workflow actions they are made of."""

from __future__ import annotations

from typing import Any

from schemas.definitions import DefinitionApplied
from schemas.topics import DEFINITIONS
from services.common.settings import KafkaSettings
from tests.samples import design_documents
from tests.support import produce

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
Criteria = list[list[dict[str, Any]]]


def delay(seconds: int) -> dict[str, Any]:
    return {"type": "delay", "seconds": seconds}


def eq(prop: str, value: Any) -> Criteria:
    return [[{"property": prop, "operator": "eq", "value": value}]]


def account(account_id: str = "acme", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smsflow/v1",
        "kind": "Account",
        "metadata": {"id": account_id},
        "spec": {
            "sms_access": True,
            "sender": "+358451234567",
            "default_region": "FI",
            "time_zone": "Europe/Helsinki",
            "quiet_hours": None,
            "subscription_types": [{"id": "sms-marketing", "name": "Marketing SMS"}],
            "opt_out_text": "Reply STOP to opt out",
            **spec,
        },
    }


def message(message_id: str = "welcome", account_id: str = "acme", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smsflow/v1",
        "kind": "SmsMessage",
        "metadata": {"id": message_id, "account": account_id},
        "spec": {
            "name": message_id,
            "body": "Hei {{ contact.firstname | default('there') }}! Tervetuloa.",
            "subscription_type": "sms-marketing",
            "delivery": "workflow",
            "state": "published",
            **spec,
        },
    }


def workflow(
    workflow_id: str = "welcome-flow",
    criteria: Criteria | None = None,
    actions: list[dict[str, Any]] | None = None,
    *,
    account_id: str = "acme",
    enabled: bool = True,
    suppression: Criteria | None = None,
    **enrollment: Any,
) -> dict[str, Any]:
    """A contact workflow; by default one that nothing enrolls in and that sends ``welcome``."""
    return {
        "apiVersion": "smsflow/v1",
        "kind": "Workflow",
        "metadata": {"id": workflow_id, "account": account_id},
        "spec": {
            "object_type": "contact",
            "enabled": enabled,
            "enrollment": {"criteria": criteria or [], **enrollment},
            "suppression": suppression or [],
            "actions": [SEND] if actions is None else actions,
        },
    }


def account_and_message() -> list[dict[str, Any]]:
    """The Account and SmsMessage of DESIGN A5 (its Workflow is left out)."""
    return [d for d in design_documents() if d["kind"] != "Workflow"]


def definition_records(
    documents: list[dict[str, Any]], revision: int | None = None
) -> list[DefinitionApplied]:
    """The documents as ``smsflow apply`` leaves them (under ``revision``, else the first one)."""
    extra = {} if revision is None else {"revision": revision}
    return [DefinitionApplied.model_validate({"document": d, **extra}) for d in documents]


def publish_definitions(
    settings: KafkaSettings, documents: list[dict[str, Any]], revision: int | None = None
) -> None:
    """The documents on the definitions topic (under ``revision``, else the first one)."""
    produce(settings, DEFINITIONS, definition_records(documents, revision))
