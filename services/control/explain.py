"""``smsflow explain ACCOUNT CONTACT [--json]``: why a contact got (or did not get) each SMS.

Answers from the topics alone, so it works while the services are down: the contact's
properties now (folded from ``contact-changes``), each workflow of the account and whether
its criteria match them now (the enroller's own criteria code, filter by filter), the
enrollment decisions, every action's outcome, the consent trail and each SMS's status.
Phone numbers are masked. Reasons are read from the topics as they are, so a new skip or
deferral reason shows up without a change here; the known ones are explained in words.

Exit codes: 0 ok, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from schemas.contacts import PropertyValue
from schemas.definitions import Filter, Workflow
from schemas.sms import FINAL_STATUSES, SmsStatusEvent
from schemas.subscriptions import SubscriptionStatus
from services.common.masking import mask_phone, mask_phones_in
from services.common.phones import normalize
from services.common.settings import KafkaSettings
from services.control.consent_history import consent_rows
from services.control.console import OK, require_broker, run_command
from services.control.contact_history import PHONE_PROPERTIES, ContactHistory, load_history
from services.enroller.criteria import compile_filter

# What each reason found on the topics means, in words; any other reason is shown as is.
REASONS = {
    "workflow_disabled": "the workflow was turned off",
    "sms_access_missing": "the account has no SMS access",
    "unknown_account": "the account was not defined yet (dead-lettered: replay it once applied)",
    "message_not_published": "the SMS message is missing, a draft, or not for workflows",
    "not_marketing_contact": "the contact is not a marketing contact (hs_marketable_status)",
    "not_subscribed": "the contact has no SMS subscription of that type",
    "no_phone_number": "the contact has no mobilephone or phone",
    "invalid_phone_number": "the contact's number is not a valid phone number",
    "opted_out": "the number itself opted out (a STOP-family reply or the provider)",
    "too_long": "the rendered SMS has too many segments",
    "frequency_capped": "the account's frequency cap for this contact was reached",
    "quiet_hours": "it was quiet hours at the recipient (sent when the window opens)",
    "sending_window": "outside the workflow's sending window (sent when it opens)",
    "goal_met": "the contact met the workflow's goal and left it",
    "criteria_met": "the contact met the enrollment criteria",
    "suppressed": "the contact matched the workflow's suppression list",
    "already_enrolled": "the contact was already enrolled",
}


def masked_value(name: str, value: PropertyValue, region: str | None = None) -> PropertyValue:
    """Numbers as in status events (the E.164 form, masked); phone-like text in others."""
    if name in PHONE_PROPERTIES and value is not None:
        return mask_phone(normalize(value, region) or str(value))
    if isinstance(value, str):
        return mask_phones_in(value)
    return value


def describe_filter(f: Filter) -> str:
    operand = f.values if f.values is not None else f.value
    return f"{f.property} {f.operator.value}" + ("" if operand is None else f" {operand}")


def failed_filters(
    criteria: Sequence[Sequence[Filter]], properties: dict[str, PropertyValue]
) -> list[dict[str, Any]]:
    """For each AND-group, its first filter the contact fails (empty when a group matches)."""
    failures = []
    for number, group in enumerate(criteria, start=1):
        for f in group:
            if not compile_filter(f)(properties):
                failures.append(
                    {
                        "group": number,
                        "filter": describe_filter(f),
                        "contact_value": masked_value(f.property, properties.get(f.property)),
                    }
                )
                break
        else:
            return []
    return failures


def workflow_verdict(workflow: Workflow, properties: dict[str, PropertyValue]) -> dict[str, Any]:
    criteria = workflow.spec.enrollment.criteria
    failures = failed_filters(criteria, properties)
    matched = bool(criteria) and not failures
    suppression = workflow.spec.suppression
    suppressed = bool(suppression) and not failed_filters(suppression, properties)
    goal = getattr(workflow.spec, "goal", None)
    goal_criteria = getattr(goal, "criteria", None) if goal is not None else None
    goal_met = bool(goal_criteria) and not failed_filters(goal_criteria, properties)
    return {
        "workflow_id": workflow.metadata.id,
        "enabled": workflow.spec.enabled,
        "criteria_match_now": matched,
        "failed_filters": failures if criteria else [{"filter": "(no enrollment criteria)"}],
        "suppressed_now": suppressed,
        "goal_met_now": goal_met,
    }


def sms_outcomes(history: ContactHistory) -> list[dict[str, Any]]:
    """Each SMS (by idempotency key) with its latest status and its path there."""
    by_key: dict[str, list[SmsStatusEvent]] = {}
    for event in history.statuses:
        by_key.setdefault(event.idempotency_key or event.event_id, []).append(event)
    rows = []
    for key, events in by_key.items():
        final = [e for e in events if e.status in FINAL_STATUSES]
        latest = final[-1] if final else events[-1]
        row: dict[str, Any] = {
            "idempotency_key": key,
            "workflow_id": latest.workflow_id,
            "message_id": latest.message_id,
            "status": latest.status.value,
            "reason": latest.reason,
            "why": why(latest, history),
            "to_masked": latest.to_masked,
            "error_code": latest.error_code,
            "path": [e.status.value for e in events],
            "at": latest.occurred_at.isoformat(),
        }
        rows.append(row)
    return rows


def why(event: SmsStatusEvent, history: ContactHistory) -> str | None:
    reason = event.reason
    if reason is None:
        return None if event.error_code is None else f"gateway error {event.error_code}"
    text = REASONS.get(reason, reason)
    if reason == "not_subscribed":  # said STOP, or never subscribed?
        unsubscribed = [
            s for s in history.subscriptions if s.status is SubscriptionStatus.UNSUBSCRIBED
        ]
        if unsubscribed:
            last = unsubscribed[-1]
            by = f"{last.source.value}" + (f" {last.source_id}" if last.source_id else "")
            text = f"the contact unsubscribed ({by}, {last.occurred_at:%Y-%m-%d %H:%M} UTC)"
        elif not history.subscriptions:
            text = "the contact was never subscribed (no consent record)"
    if reason == "opted_out":
        opted = [o for o in history.opt_outs if o.opted_out]
        if opted:
            last = opted[-1]
            text += f": {mask_phone(last.number)} by {last.source.value}"
            text += f" {last.keyword!r}" if last.keyword else ""
    return text


def explain(history: ContactHistory) -> dict[str, Any]:
    properties = history.properties
    account = history.catalog.account(history.account_id)
    region = account.spec.default_region if account else None
    workflows = sorted(history.catalog.workflows_of(history.account_id), key=lambda w: w.key)
    return {
        "account_id": history.account_id,
        "contact_id": history.contact_id,
        "known": bool(history.changes),
        "deleted": history.deleted,
        "account_defined": history.catalog.account(history.account_id) is not None,
        "properties": {
            name: masked_value(name, v, region) for name, v in sorted(properties.items())
        },
        "workflows": [workflow_verdict(w, properties) for w in workflows],
        "enrollments": [
            {
                "at": e.occurred_at.isoformat(),
                "workflow_id": e.workflow_id,
                "decision": e.decision.value,
                "reason": e.reason,
                "enrollment_id": e.enrollment_id,
            }
            for e in history.enrollments
        ],
        "actions": [
            {
                "at": r.occurred_at.isoformat(),
                "workflow_id": r.workflow_id,
                "step": r.step,
                "action_id": r.action_id,
                "outcome": r.outcome.value,
                "reason": r.reason,
            }
            for r in history.results
        ],
        "consent": consent_rows(history),
        "sms": sms_outcomes(history),
        "dead_letters": [
            {"service": d.service, "source": d.where, "reason": mask_phones_in(d.reason)}
            for d in history.dead_letters
        ],
    }


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


def render(story: dict[str, Any]) -> str:
    """The story for people."""
    who = f"contact {story['contact_id']} of account {story['account_id']}"
    lines = [f"Story of {who}"]
    if not story["account_defined"]:
        lines.append("  ! the account is not defined (smsflow apply it)")
    if not story["known"]:
        lines.append("  no contact change was ever published for this contact")
    elif story["deleted"]:
        lines.append("  the contact was deleted")
    lines += _section("Properties now", [f"{k} = {v}" for k, v in story["properties"].items()])
    lines += _section(
        "Workflows", [_workflow_line(w) for w in story["workflows"]], "the account has no workflows"
    )
    lines += _section("Enrollments", [_enrollment_line(e) for e in story["enrollments"]], "none")
    lines += _section("Actions", [_action_line(a) for a in story["actions"]], "none")
    lines += _section(
        "Consent",
        [f"{_when(c['at'])}  {c['summary']}" for c in story["consent"]],
        "no consent record",
    )
    lines += _section("SMS", [line for s in story["sms"] for line in _sms_lines(s)], "no SMS")
    if story["dead_letters"]:
        lines += _section(
            "Dead letters",
            [f"{d['service']} {d['source']}: {d['reason']}" for d in story["dead_letters"]],
        )
    return "\n".join(lines)


def _section(title: str, entries: list[str], empty: str | None = None) -> list[str]:
    """A titled block of indented lines; ``empty`` stands in when there is no entry."""
    lines = [f"\n{title}:", *(f"  {entry}" for entry in entries)]
    if not entries and empty:
        lines.append(f"  {empty}")
    return lines


def _workflow_line(w: dict[str, Any]) -> str:
    state = "on" if w["enabled"] else "off"
    if w["criteria_match_now"]:
        verdict = "criteria match now"
    else:
        failed = "; ".join(
            f"{f['filter']} (contact has {f.get('contact_value')!r})"
            if "contact_value" in f
            else f["filter"]
            for f in w["failed_filters"]
        )
        verdict = f"criteria do not match: {failed}"
    extra = " (suppressed now)" if w["suppressed_now"] else ""
    extra += " (goal met now)" if w["goal_met_now"] else ""
    return f"{w['workflow_id']} [{state}]: {verdict}{extra}"


def _enrollment_line(e: dict[str, Any]) -> str:
    reason = f" ({REASONS.get(e['reason'], e['reason'])})" if e["reason"] else ""
    return f"{_when(e['at'])}  {e['workflow_id']}: {e['decision']}{reason}"


def _action_line(a: dict[str, Any]) -> str:
    reason = f" ({a['reason']})" if a["reason"] else ""
    step = f"step {a['step']} {a['action_id']}"
    return f"{_when(a['at'])}  {a['workflow_id']} {step}: {a['outcome']}{reason}"


def _sms_lines(s: dict[str, Any]) -> list[str]:
    to = f" to {s['to_masked']}" if s["to_masked"] else ""
    why_text = f": {s['why']}" if s["why"] else ""
    what = " ".join(str(part) for part in (s["workflow_id"], s["message_id"]) if part)
    return [f"{what}{to}: {s['status']}{why_text}", f"    {' -> '.join(s['path'])}"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow explain",
        description="A contact's story, from the topics: workflows, actions, consent, SMS.",
        epilog="exit codes: 0 ok, 2 usage, 3 broker unreachable",
    )
    parser.add_argument("account")
    parser.add_argument("contact")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    return parser


def main(argv: list[str]) -> int:
    return run_command("explain", build_parser(), argv, _explain)


def _explain(args: argparse.Namespace, settings: KafkaSettings) -> int:
    require_broker(settings)
    story = explain(load_history(settings, args.account, args.contact))
    print(json.dumps(story, indent=2) if args.json else render(story))
    return OK
