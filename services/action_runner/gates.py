"""The ordered gate walk of a Send SMS action (DESIGN A6): send, skip, defer or fail.

Pure: definitions, the contact snapshot, the consent ledger, which numbers opted out and
``now`` in; a Decision out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from schemas.contacts import PropertyValue
from schemas.definitions import Account, Delivery, MessageState, SmsMessage, Workflow
from schemas.sms import DEFERRED_QUIET_HOURS, Encoding, SkipReason
from services.action_runner.consent import ConsentRecord, may_send
from services.common.masking import mask_phone
from services.common.phones import resolve_recipient
from services.common.quiet_hours import NoCommonWindow, next_opening, recipient_zones
from services.common.rendering import (
    RenderBudgetExceeded,
    RenderError,
    render,
    with_opt_out,
)
from services.common.segments import count_segments

DEFAULT_MAX_SEGMENTS = 10
# The body would take more output or work than a contact's data may drive
# (services/common/rendering.py).
RENDER_BUDGET_EXCEEDED = "render_budget_exceeded"

# ``opted_out(account_id, e164)``: whether the number itself opted out of the account's SMS.
OptedOut = Callable[[str, str], bool]


def no_opt_outs(account_id: str, number: str) -> bool:
    return False


class Verdict(StrEnum):
    SEND = "send"
    SKIP = "skip"
    DEFER = "defer"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str | None = None
    to: str | None = None
    to_masked: str | None = None
    body: str | None = None
    encoding: Encoding | None = None
    segments: int | None = None
    until: datetime | None = None

    @classmethod
    def skip(cls, reason: SkipReason, to_masked: str | None = None) -> Decision:
        return cls(Verdict.SKIP, reason=reason.value, to_masked=to_masked)


def is_marketing_contact(contact: Mapping[str, PropertyValue]) -> bool:
    value = contact.get("hs_marketable_status")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def decide_send(
    *,
    workflow: Workflow | None,
    account: Account | None,
    message: SmsMessage | None,
    contact: Mapping[str, PropertyValue],
    consent: ConsentRecord | None,
    now: datetime,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    opted_out: OptedOut = no_opt_outs,
    link: Callable[[str], str] = str,
) -> Decision:
    if workflow is None or not workflow.spec.enabled:
        return Decision.skip(SkipReason.WORKFLOW_DISABLED)
    if account is None or not account.spec.sms_access:
        return Decision.skip(SkipReason.SMS_ACCESS_MISSING)
    if (
        message is None
        or message.account_id != account.metadata.id
        or message.spec.state is not MessageState.PUBLISHED
        or message.spec.delivery is not Delivery.WORKFLOW
    ):
        return Decision.skip(SkipReason.MESSAGE_NOT_PUBLISHED)
    if not is_marketing_contact(contact):
        return Decision.skip(SkipReason.NOT_MARKETING_CONTACT)
    try:
        subscribed = may_send(consent, message.spec.subscription_type)
    except Exception:  # consent fails closed: a ledger we cannot read never sends
        subscribed = False
    if not subscribed:
        return Decision.skip(SkipReason.NOT_SUBSCRIBED)
    spec = account.spec
    recipient = resolve_recipient(contact, spec.default_region)
    if recipient.missing:
        return Decision.skip(SkipReason.NO_PHONE_NUMBER)
    if recipient.e164 is None:
        return Decision.skip(SkipReason.INVALID_PHONE_NUMBER, mask_phone(recipient.raw))
    masked = mask_phone(recipient.e164)
    try:
        number_opted_out = opted_out(account.metadata.id, recipient.e164)
    except Exception:  # consent fails closed: an opt-out we cannot read never sends
        number_opted_out = True
    if number_opted_out:
        return Decision.skip(SkipReason.OPTED_OUT, masked)
    try:
        text = render(message.spec.body, contact, {"id": account.metadata.id}, link)
    except RenderBudgetExceeded as exc:
        return Decision(Verdict.SKIP, reason=f"{RENDER_BUDGET_EXCEEDED}: {exc}", to_masked=masked)
    except RenderError as exc:
        return Decision(Verdict.FAIL, reason=f"render_failed: {exc}", to_masked=masked)
    text = with_opt_out(text, spec.opt_out_text)
    if not text.strip():
        return Decision(Verdict.FAIL, reason="render_failed: empty body", to_masked=masked)
    count = count_segments(text)
    if count.segments > max_segments:
        return Decision(
            Verdict.SKIP,
            reason=SkipReason.TOO_LONG.value,
            to_masked=masked,
            encoding=count.encoding,
            segments=count.segments,
        )
    zones = recipient_zones(contact.get("hs_timezone"), recipient.zones, spec.time_zone)
    try:
        until = next_opening(now, zones, spec.quiet_hours)
    except NoCommonWindow:  # e.g. a toll-free number: fall back to the account's zone
        until = next_opening(now, (ZoneInfo(spec.time_zone),), spec.quiet_hours)
    verdict, reason = (Verdict.DEFER, DEFERRED_QUIET_HOURS) if until else (Verdict.SEND, None)
    return Decision(
        verdict,
        reason=reason,
        to=recipient.e164,
        to_masked=masked,
        body=text,
        encoding=count.encoding,
        segments=count.segments,
        until=until,
    )
