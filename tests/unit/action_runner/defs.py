"""Definitions, contacts and commands for the action runner's unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.actions import ActionCommand
from schemas.definitions import Account, SmsMessage, Workflow
from schemas.enrollment import action_id, enrollment_id
from schemas.subscriptions import ConsentSource, LegalBasis, SubscriptionChange, SubscriptionStatus
from services.action_runner.consent import ConsentRecord, apply

# Noon in Helsinki: outside the default quiet hours.
NOON = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
# 23:00 in Helsinki: inside them.
NIGHT = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
MARKETING = "sms-marketing"
CONTACT: dict[str, Any] = {
    "firstname": "Aino",
    "mobilephone": "040 123 4567",
    "phone": None,
    "hs_marketable_status": "true",
    "lifecyclestage": "customer",
}


def account(**spec: Any) -> Account:
    base: dict[str, Any] = {
        "sms_access": True,
        "sender": "+358451234567",
        "default_region": "FI",
        "time_zone": "Europe/Helsinki",
        "quiet_hours": {"start": "20:00", "end": "08:00"},
        "subscription_types": [{"id": MARKETING, "name": "Marketing SMS"}],
        "opt_out_text": "Reply STOP to opt out",
    }
    return Account.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "Account",
            "metadata": {"id": "acme"},
            "spec": {**base, **spec},
        }
    )


def message(message_id: str = "welcome", **spec: Any) -> SmsMessage:
    base: dict[str, Any] = {
        "name": "Welcome",
        "body": "Hei {{ contact.firstname | default('there') }}! Tervetuloa.",
        "subscription_type": MARKETING,
        "delivery": "workflow",
        "state": "published",
    }
    return SmsMessage.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "SmsMessage",
            "metadata": {"id": message_id, "account": "acme"},
            "spec": {**base, **spec},
        }
    )


def workflow(enabled: bool = True) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "Workflow",
            "metadata": {"id": "welcome-flow", "account": "acme"},
            "spec": {"enabled": enabled, "actions": [{"type": "send_sms", "message": "welcome"}]},
        }
    )


@dataclass
class Defs:
    """An in-memory stand-in for the Catalog."""

    accounts: dict[str, Account] = field(default_factory=lambda: {"acme": account()})
    messages: dict[str, SmsMessage] = field(default_factory=lambda: {"welcome": message()})
    workflows: dict[str, Workflow] = field(default_factory=lambda: {"welcome-flow": workflow()})

    def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def workflow(self, account_id: str, workflow_id: str) -> Workflow | None:
        return self.workflows.get(workflow_id) if account_id == "acme" else None

    def message(self, account_id: str, message_id: str) -> SmsMessage | None:
        return self.messages.get(message_id) if account_id == "acme" else None


def command(
    action: dict[str, Any] | None = None,
    *,
    contact: dict[str, Any] | None = None,
    step: int = 3,
    attempt: int = 1,
    sequence: int = 1,
) -> ActionCommand:
    enrollment = enrollment_id("acme", "welcome-flow", "1001", sequence)
    return ActionCommand.model_validate(
        {
            "action_id": action_id(enrollment, step),
            "account_id": "acme",
            "contact_id": "1001",
            "workflow_id": "welcome-flow",
            "enrollment_id": enrollment,
            "step": step,
            "attempt": attempt,
            "action": action or {"type": "send_sms", "message": "welcome"},
            "contact": CONTACT if contact is None else contact,
        }
    )


def change(
    status: SubscriptionStatus,
    subscription_type: str | None = MARKETING,
    source: ConsentSource = ConsentSource.WORKFLOW,
    basis: LegalBasis | None = LegalBasis.CONSENT_WITH_NOTICE,
) -> SubscriptionChange:
    return SubscriptionChange(
        account_id="acme",
        contact_id="1001",
        subscription_type=subscription_type,
        status=status,
        legal_basis=basis if subscription_type else None,
        legal_basis_explanation="Ticked the box" if subscription_type and basis else None,
        source=source,
        source_id="welcome-flow" if source is ConsentSource.WORKFLOW else "STOP",
    )


def ledger(*changes: SubscriptionChange) -> ConsentRecord:
    record: ConsentRecord | None = None
    for item in changes:
        record = apply(record, item)
    return record or ConsentRecord()


SUBSCRIBED = ledger(change(SubscriptionStatus.SUBSCRIBED))
