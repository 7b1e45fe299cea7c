"""Definitions the e2e tests apply: one account with two workflows, per account id."""

from __future__ import annotations

# A sender number belongs to one account: inbound replies find their account by it.
SENDERS = {"e2e": "+358451000001", "nosms": "+358451000002", "quiet": "+358451000003"}
SENDER = SENDERS["e2e"]


def sender_of(account_id: str) -> str:
    return SENDERS.get(account_id, f"+35845{sum(map(ord, account_id)) % 10_000_000:07d}")


def account(account_id: str, sms_access: bool = True, quiet: str = "null") -> str:
    return f"""
apiVersion: smsflow/v1
kind: Account
metadata: {{id: {account_id}}}
spec:
  sms_access: {str(sms_access).lower()}
  sender: "{sender_of(account_id)}"
  default_region: FI
  time_zone: UTC
  quiet_hours: {quiet}
  subscription_types: [{{id: sms-marketing, name: Marketing SMS}}]
  opt_out_text: "Reply STOP to opt out"
---
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {{id: welcome, account: {account_id}}}
spec:
  name: Welcome
  body: "Hei {{{{ contact.firstname | default('there') }}}}! Welcome ({account_id})."
  subscription_type: sms-marketing
  delivery: workflow
  state: published
---
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {{id: followup, account: {account_id}}}
spec:
  name: Follow-up
  body: "VIP offer for {{{{ contact.firstname | default('you') }}}}"
  subscription_type: sms-marketing
  delivery: workflow
  state: published
---
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: subscribe-send, account: {account_id}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{{property: lifecyclestage, operator: is_any_of, values: [customer]}}]]
  actions:
    - {{type: manage_subscription, channel: sms, subscription_type: sms-marketing,
       status: subscribed, legal_basis: CONSENT_WITH_NOTICE,
       legal_basis_explanation: "Ticked the SMS box at checkout",
       processing_legal_basis: PROCESS_AND_STORE}}
    - {{type: set_marketing_contact_status, marketing: true}}
    - {{type: delay, seconds: 1}}
    - {{type: send_sms, message: welcome}}
---
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: send-only, account: {account_id}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{{property: segment, operator: eq, value: vip}}]]
  actions:
    - {{type: send_sms, message: followup}}
"""
