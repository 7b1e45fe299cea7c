"""Definitions the e2e tests apply: one account with two workflows, per account id."""

from __future__ import annotations

# A sender number belongs to one account: inbound replies find their account by it.
SENDERS = {"e2e": "+358451000001", "nosms": "+358451000002", "quiet": "+358451000003"}
SENDER = SENDERS["e2e"]


# Workflow actions (YAML list items): subscribe the contact to marketing SMS with its consent
# recorded, and make it a marketing contact, as the sending workflows need.
SUBSCRIBE_SMS = """\
    - {type: manage_subscription, channel: sms, subscription_type: sms-marketing,
       status: subscribed, legal_basis: CONSENT_WITH_NOTICE,
       legal_basis_explanation: "Ticked the SMS box at checkout",
       processing_legal_basis: PROCESS_AND_STORE}
"""
SUBSCRIBE = SUBSCRIBE_SMS + "    - {type: set_marketing_contact_status, marketing: true}\n"


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
{SUBSCRIBE}    - {{type: delay, seconds: 1}}
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


def message(account_id: str, message_id: str, body: str) -> str:
    """A published workflow SmsMessage of the marketing subscription type."""
    return f"""
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {{id: {message_id}, account: {account_id}}}
spec:
  name: {message_id}
  body: "{body}"
  subscription_type: sms-marketing
  delivery: workflow
  state: published
"""


def workflow(
    account_id: str, workflow_id: str, criteria: str, actions: str, extra: str = ""
) -> str:
    """An enabled Workflow: ``criteria`` one filter (YAML flow mapping), ``actions`` list items,
    ``extra`` more lines of its spec (a goal, a sending window)."""
    return f"""
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: {workflow_id}, account: {account_id}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{criteria}]]
{extra}  actions:
{actions}"""
