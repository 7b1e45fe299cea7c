"""One valid instance of every event model, for round-trip and schema tests."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.dead_letters import DeadLetter
from schemas.definitions import DefinitionApplied, SendSms
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent, action_id, enrollment_id
from schemas.envelope import Event
from schemas.ledger import LedgerState, SmsLedgerEntry
from schemas.sms import (
    Encoding,
    InboundSms,
    NumberOptOut,
    OptOutSource,
    ProviderOptOut,
    SmsLinkClicked,
    SmsRequest,
    SmsStatus,
    SmsStatusEvent,
)
from schemas.subscriptions import (
    ConsentSource,
    LegalBasis,
    SubscriptionChange,
    SubscriptionStatus,
)

DESIGN_DOCUMENTS = """
apiVersion: smsflow/v1
kind: Account
metadata: {id: acme}
spec:
  sms_access: true
  sender: "+358451234567"
  default_region: FI
  time_zone: Europe/Helsinki
  quiet_hours: {start: "20:00", end: "08:00"}
  subscription_types: [{id: sms-marketing, name: Marketing SMS}]
  opt_out_text: "Reply STOP to opt out"
---
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {id: welcome, account: acme}
spec:
  name: Welcome
  body: "Hei {{ contact.firstname | default('there') }}! Tervetuloa."
  subscription_type: sms-marketing
  delivery: workflow
  state: published
---
apiVersion: smsflow/v1
kind: Workflow
metadata: {id: welcome-flow, account: acme}
spec:
  object_type: contact
  enabled: true
  enrollment:
    criteria:
      - [{property: lifecyclestage, operator: is_any_of, values: [customer]}]
    reenroll_on: []
    enroll_existing: false
    unenroll_when_criteria_unmet: false
  suppression: []
  actions:
    - {type: manage_subscription, channel: sms, subscription_type: sms-marketing,
       status: subscribed, legal_basis: CONSENT_WITH_NOTICE,
       legal_basis_explanation: "Ticked the SMS box at checkout",
       processing_legal_basis: PROCESS_AND_STORE}
    - {type: set_marketing_contact_status, marketing: true}
    - {type: delay, minutes: 5}
    - {type: send_sms, message: welcome}
"""


def design_documents() -> list[dict[str, object]]:
    return list(yaml.safe_load_all(DESIGN_DOCUMENTS))


def samples() -> list[Event]:
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    enrollment = enrollment_id("acme", "welcome-flow", "1001", 1)
    definitions = [DefinitionApplied.model_validate({"document": d}) for d in design_documents()]
    change = ContactChange(
        account_id="acme",
        contact_id="1001",
        occurred_at=at,
        properties={
            "firstname": "Aino",
            "mobilephone": "040 123 4567",
            "phone": None,
            "hs_marketable_status": "true",
            "lifecyclestage": "customer",
        },
    )
    request = SmsRequest.model_validate(
        {
            "idempotency_key": "sms-3f2a9c0d1e",
            "account_id": "acme",
            "contact_id": "1001",
            "workflow_id": "welcome-flow",
            "enrollment_id": enrollment,
            "message_id": "welcome",
            "action_id": action_id(enrollment, 3),
            "to": "+358401234567",
            "from": "+358451234567",
            "body": "Hei Aino! Tervetuloa.",
            "encoding": "gsm7",
            "segments": 1,
            "to_masked": "+35840*****67",
        }
    )
    return [
        change,
        *definitions,
        EnrollmentEvent(
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            decision=EnrollmentDecision.ENROLLED,
            enrollment_id=enrollment,
            sequence=1,
            reason="criteria_met",
        ),
        ActionCommand(
            action_id=action_id(enrollment, 3),
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            enrollment_id=enrollment,
            step=3,
            action=SendSms(message="welcome"),
            contact=dict(change.properties),
        ),
        ActionResult(
            action_id=action_id(enrollment, 1),
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            enrollment_id=enrollment,
            step=1,
            outcome=ActionOutcome.DONE,
            contact_change=ContactChange(
                account_id="acme",
                contact_id="1001",
                properties={"hs_marketable_status": "true"},
                source="workflow:welcome-flow",
            ),
        ),
        SubscriptionChange(
            account_id="acme",
            contact_id="1001",
            subscription_type="sms-marketing",
            status=SubscriptionStatus.SUBSCRIBED,
            legal_basis=LegalBasis.CONSENT_WITH_NOTICE,
            legal_basis_explanation="Ticked the SMS box at checkout",
            processing_legal_basis=LegalBasis.PROCESS_AND_STORE,
            source=ConsentSource.WORKFLOW,
            source_id="welcome-flow",
        ),
        request,
        SmsStatusEvent(
            idempotency_key=request.idempotency_key,
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            enrollment_id=enrollment,
            message_id="welcome",
            status=SmsStatus.QUEUED,
            to_masked="+35840*****67",
            segments=1,
            encoding=Encoding.GSM7,
            attempts=0,
        ),
        InboundSms.model_validate(
            {"account_id": "acme", "from": "+358401234567", "to": "+358451234567", "body": "STOP"}
        ),
        ProviderOptOut(account_id="acme", phone="+358401234567", error_code="21610"),
        NumberOptOut(
            account_id="acme",
            number="+358401234567",
            opted_out=True,
            keyword="STOP",
            source=OptOutSource.REPLY,
            provider_message_id="SM0123456789abcdef0123456789abcdef",
        ),
        SmsLinkClicked(
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            message_id="welcome",
            idempotency_key=request.idempotency_key,
            url="https://example.com/offer",
        ),
        SmsLedgerEntry(
            idempotency_key=request.idempotency_key,
            state=LedgerState.SENT,
            account_id="acme",
            contact_id="1001",
            workflow_id="welcome-flow",
            enrollment_id=enrollment,
            message_id="welcome",
            to_masked="+35840*****67",
            segments=1,
            encoding=Encoding.GSM7,
            api="http",
            attempts=1,
            provider_message_id="msg_0f1e2d3c",
        ),
        DeadLetter(
            service="enroller",
            topic="smsflow.contact-changes",
            partition=2,
            offset=17,
            key="acme:1001",
            reason="malformed JSON",
            error_type="DecodeError",
            value="{not json",
        ),
    ]
