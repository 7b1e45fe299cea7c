"""Running one ActionCommand: the result for the enroller and everything else it emits.

Pure: the definitions, the contact's consent ledger and ``now`` are given; the caller
produces ``Handled.effects`` in order, then stores ``Handled.consent_change`` (when set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field, ValidationError

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.definitions import (
    Account,
    Delay,
    ManageSubscription,
    SendSms,
    SetMarketingContactStatus,
    SmsMessage,
    Workflow,
)
from schemas.envelope import Id
from schemas.sms import SkipReason, SmsRequest, SmsStatus, SmsStatusEvent
from schemas.subscriptions import SubscriptionChange
from schemas.topics import (
    ACTION_RESULTS,
    CONTACT_CHANGES,
    SMS_REQUESTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
)
from services.action_runner import consent as ledger
from services.action_runner.consent import ConsentRecord
from services.action_runner.emissions import Effects
from services.action_runner.frequency import SentLog, cap_decision, record
from services.action_runner.gates import (
    DEFAULT_MAX_SEGMENTS,
    Decision,
    OptedOut,
    Verdict,
    decide_send,
    no_opt_outs,
)
from services.action_runner.tracked_links import TrackedLinks
from services.common.idempotency import emission_id, sms_key


class Definitions(Protocol):
    def account(self, account_id: str) -> Account | None: ...
    def workflow(self, account_id: str, workflow_id: str) -> Workflow | None: ...
    def message(self, account_id: str, message_id: str) -> SmsMessage | None: ...


@dataclass
class Handled:
    result: ActionResult
    effects: Effects = field(default_factory=Effects)
    # A change of the contact's ledger, to store once it is on the audit trail.
    consent_change: SubscriptionChange | None = None
    # The contact's log of requested SMS (frequency caps), to store once a request is out.
    sent: SentLog | None = None


# A send whose number's opt-out state could not be proved current: decided again later.
CONSENT_PENDING = "consent_pending"
# Definitions name an account the runner does not know (yet): dead-lettered, so that a replay
# once the account is applied runs the action after all. Not a skip: nothing is lost.
UNKNOWN_ACCOUNT = "unknown_account"


def defer_send(command: ActionCommand, now: datetime, until: datetime, reason: str) -> Handled:
    """A Send SMS put off undecided (status ``deferred``): the enroller sends it again."""
    assert isinstance(command.action, SendSms)
    decision = Decision(Verdict.DEFER, reason=reason, until=until)
    return _send_outcome(command, command.action, decision, None, now)


def handle_command(
    command: ActionCommand,
    definitions: Definitions,
    consent: ConsentRecord | None,
    now: datetime,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    opted_out: OptedOut = no_opt_outs,
    sent: SentLog | None = None,
    link_secret: bytes | None = None,
) -> Handled:
    action = command.action
    workflow = definitions.workflow(command.account_id, command.workflow_id)
    if isinstance(action, SendSms):
        account = definitions.account(command.account_id)
        if account is None:
            failed = Decision(Verdict.FAIL, reason=UNKNOWN_ACCOUNT)
            return _unknown_account(_send_outcome(command, action, failed, None, now), command)
        key = _key(command)
        # Without a secret (tests of other things), links render as they are, untracked.
        links = (
            TrackedLinks(link_secret, key, account.spec.link_domain)
            if account and link_secret
            else None
        )
        decision = decide_send(
            workflow=workflow,
            account=account,
            message=definitions.message(command.account_id, action.message),
            contact=command.contact,
            consent=consent,
            now=now,
            max_segments=max_segments,
            opted_out=opted_out,
            link=links or str,
        )
        cap = account.spec.frequency_cap if account is not None else None
        decision = cap_decision(decision, sent, cap, key, now)
        return _send_outcome(command, action, decision, account, now, links, sent)
    if isinstance(action, Delay):
        return _finish(command, now, ActionOutcome.FAILED, "delay runs in the enroller")
    if workflow is None or not workflow.spec.enabled:
        # HubSpot: a turned-off workflow's enrolled records have their actions skipped.
        return _finish(command, now, ActionOutcome.SKIPPED, SkipReason.WORKFLOW_DISABLED.value)
    account = definitions.account(command.account_id)
    if account is None:
        failed = _finish(command, now, ActionOutcome.FAILED, UNKNOWN_ACCOUNT)
        return _unknown_account(failed, command)
    if isinstance(action, ManageSubscription):
        return _manage_subscription(command, action, account, consent, now)
    return _set_marketing_status(command, action, now)


def _unknown_account(handled: Handled, command: ActionCommand) -> Handled:
    handled.effects.dead_letter = f"unknown account {command.account_id!r}"
    return handled


def _manage_subscription(
    command: ActionCommand,
    action: ManageSubscription,
    account: Account,
    consent: ConsentRecord | None,
    now: datetime,
) -> Handled:
    known = {t.id for t in account.spec.subscription_types}
    if action.subscription_type not in known:
        handled = _finish(command, now, ActionOutcome.FAILED, "unknown_subscription_type")
        handled.effects.dead_letter = (
            f"subscription type {action.subscription_type!r} not in account {command.account_id!r}"
        )
        return handled
    decision = ledger.decide_subscription(
        consent,
        action,
        account_id=command.account_id,
        contact_id=command.contact_id,
        workflow_id=command.workflow_id,
        event_id=emission_id(command.action_id, command.attempt, "subscription"),
        now=now,
    )
    if decision.refused:
        return _finish(command, now, ActionOutcome.SKIPPED, decision.refused)
    if decision.change is None:
        return _finish(command, now, ActionOutcome.DONE, ledger.NO_STATUS_CHANGE)
    handled = _finish(command, now, ActionOutcome.DONE, None, emit_result=False)
    handled.effects.emit(SUBSCRIPTION_CHANGES, decision.change)
    handled.effects.emit(ACTION_RESULTS, handled.result)
    handled.consent_change = decision.change
    return handled


def _set_marketing_status(
    command: ActionCommand, action: SetMarketingContactStatus, now: datetime
) -> Handled:
    # Modelled simply: "false" is written too. HubSpot only lets a contact become
    # non-marketing at its next marketing-contact update date; smsflow has no billing cycle.
    change = ContactChange(
        event_id=emission_id(command.action_id, command.attempt, "contact-change"),
        occurred_at=now,
        account_id=command.account_id,
        contact_id=command.contact_id,
        properties={"hs_marketable_status": "true" if action.marketing else "false"},
        source=f"workflow:{command.workflow_id}",
    )
    handled = _finish(command, now, ActionOutcome.DONE, None, emit_result=False)
    handled.result = handled.result.model_copy(update={"contact_change": change})
    handled.effects.emit(CONTACT_CHANGES, change)
    handled.effects.emit(ACTION_RESULTS, handled.result)
    return handled


def _key(command: ActionCommand) -> str:
    return sms_key(command.account_id, command.workflow_id, command.enrollment_id, command.step_id)


def _send_outcome(
    command: ActionCommand,
    action: SendSms,
    decision: Decision,
    account: Account | None,
    now: datetime,
    links: TrackedLinks | None = None,
    sent: SentLog | None = None,
) -> Handled:
    key = _key(command)
    outcome, status = {
        Verdict.SEND: (ActionOutcome.DONE, SmsStatus.QUEUED),
        Verdict.SKIP: (ActionOutcome.SKIPPED, SmsStatus.SKIPPED),
        Verdict.DEFER: (ActionOutcome.DEFERRED, SmsStatus.DEFERRED),
        Verdict.FAIL: (ActionOutcome.FAILED, SmsStatus.FAILED),
    }[decision.verdict]
    handled = _finish(
        command, now, outcome, decision.reason, retry_at=decision.until, emit_result=False
    )
    # The status first: outputs are produced in order without awaiting each, so ``queued``
    # is appended no later than the request, never after the sender's ``sent`` for it.
    handled.effects.emit(SMS_STATUS, _status(command, action, decision, key, status, now))
    if decision.verdict is Verdict.SEND and account is not None:
        codes = links.codes if links is not None else None
        request = _request(command, action, decision, key, account, now, codes)
        handled.effects.emit(SMS_REQUESTS, request)
        handled.sent = record(sent, key, now, account.spec.frequency_cap)
    handled.effects.emit(ACTION_RESULTS, handled.result)
    return handled


def _request(
    command: ActionCommand,
    action: SendSms,
    decision: Decision,
    key: str,
    account: Account,
    now: datetime,
    links: dict[str, str] | None = None,
) -> SmsRequest:
    return SmsRequest.model_validate(
        {
            "event_id": emission_id(command.action_id, command.attempt, "request"),
            "occurred_at": now,
            "idempotency_key": key,
            "account_id": command.account_id,
            "contact_id": command.contact_id,
            "workflow_id": command.workflow_id,
            "enrollment_id": command.enrollment_id,
            "action_id": command.action_id,
            "message_id": action.message,
            "to": decision.to,
            "from": account.spec.sender,
            "body": decision.body,
            "encoding": decision.encoding,
            "segments": decision.segments,
            "to_masked": decision.to_masked,
            "links": links or None,
        }
    )


def _status(
    command: ActionCommand,
    action: SendSms,
    decision: Decision,
    key: str,
    status: SmsStatus,
    now: datetime,
) -> SmsStatusEvent:
    return SmsStatusEvent(
        event_id=emission_id(command.action_id, command.attempt, "status"),
        occurred_at=now,
        idempotency_key=key,
        account_id=command.account_id,
        contact_id=command.contact_id,
        workflow_id=command.workflow_id,
        enrollment_id=command.enrollment_id,
        message_id=action.message,
        status=status,
        reason=decision.reason,
        to_masked=decision.to_masked,
        segments=decision.segments,
        encoding=decision.encoding,
        deferred_until=decision.until,
    )


def _finish(
    command: ActionCommand,
    now: datetime,
    outcome: ActionOutcome,
    reason: str | None,
    *,
    retry_at: datetime | None = None,
    emit_result: bool = True,
) -> Handled:
    result = ActionResult(
        event_id=emission_id(command.action_id, command.attempt, "result"),
        occurred_at=now,
        action_id=command.action_id,
        account_id=command.account_id,
        contact_id=command.contact_id,
        workflow_id=command.workflow_id,
        enrollment_id=command.enrollment_id,
        step=command.step,
        outcome=outcome,
        reason=reason,
        retry_at=retry_at,
    )
    handled = Handled(result=result)
    if emit_result:
        handled.effects.emit(ACTION_RESULTS, result)
    return handled


class _Envelope(BaseModel):
    """The routing fields of a command whose action could not be read."""

    action_id: str
    account_id: Id
    contact_id: Id
    workflow_id: Id
    enrollment_id: str
    step: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1)


def invalid_command_result(value: bytes | None, reason: str, now: datetime) -> ActionResult | None:
    """A ``failed`` result for a command that names its step but cannot be run (e.g. an
    unknown action type), so the enrollment moves on; None when not even that is readable."""
    if value is None:
        return None
    try:
        envelope = _Envelope.model_validate_json(value)
    except ValidationError:
        return None
    return ActionResult(
        event_id=emission_id(envelope.action_id, envelope.attempt, "result"),
        occurred_at=now,
        action_id=envelope.action_id,
        account_id=envelope.account_id,
        contact_id=envelope.contact_id,
        workflow_id=envelope.workflow_id,
        enrollment_id=envelope.enrollment_id,
        step=envelope.step,
        outcome=ActionOutcome.FAILED,
        reason=f"invalid_command: {reason}"[:500],
    )
