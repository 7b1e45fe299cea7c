"""``smsflow consent show ACCOUNT CONTACT | ACCOUNT --number N``: the consent audit trail.

Every subscription change (``subscription-changes``, kept forever) and every opt-out of the
contact's numbers (``opt-outs``), oldest first, each with its source, legal basis,
explanation and time: what a GDPR data-subject request or a carrier complaint asks for.
With ``--number``, the number's opt-outs and the subscription changes that name it.

Exit codes: 0 ok, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from schemas.sms import NumberOptOut
from schemas.subscriptions import SubscriptionChange
from services.common.masking import mask_phone
from services.common.settings import KafkaSettings
from services.control.console import OK, USAGE, require_broker, run_command
from services.control.contact_history import ContactHistory, load_history


def subscription_row(change: SubscriptionChange) -> dict[str, Any]:
    scope = change.subscription_type or "all SMS"
    source = change.source.value + (f" {change.source_id}" if change.source_id else "")
    basis = change.legal_basis.value if change.legal_basis else None
    return {
        "at": change.occurred_at.isoformat(),
        "kind": "subscription",
        "contact_id": change.contact_id,
        "subscription_type": change.subscription_type,
        "status": change.status.value,
        "previous_status": change.previous_status.value,
        "legal_basis": basis,
        "legal_basis_explanation": change.legal_basis_explanation,
        "processing_legal_basis": (
            change.processing_legal_basis.value if change.processing_legal_basis else None
        ),
        "source": source,
        "number": change.phone_masked,
        "summary": (
            f"{scope}: {change.previous_status.value} -> {change.status.value} by {source}"
            + (f"; legal basis {basis}" if basis else "")
            + (f" ({change.legal_basis_explanation})" if change.legal_basis_explanation else "")
        ),
    }


def opt_out_row(event: NumberOptOut) -> dict[str, Any]:
    state = "opted out" if event.opted_out else "opted back in"
    keyword = f" {event.keyword!r}" if event.keyword else ""
    number = mask_phone(event.number)
    return {
        "at": event.occurred_at.isoformat(),
        "kind": "number_opt_out",
        "number": number,
        "status": "OPTED_OUT" if event.opted_out else "OPTED_IN",
        "keyword": event.keyword,
        "source": event.source.value,
        "evidence": event.provider_message_id,
        "legal_basis": None,
        "legal_basis_explanation": f"the number's own {event.source.value}{keyword}",
        "summary": f"number {number} {state} by {event.source.value}{keyword}",
    }


def consent_rows(history: ContactHistory) -> list[dict[str, Any]]:
    rows = [subscription_row(c) for c in history.subscriptions]
    rows += [opt_out_row(o) for o in history.opt_outs]
    return sorted(rows, key=lambda row: str(row["at"]))


def render(rows: list[dict[str, Any]], title: str) -> str:
    lines = [f"Consent trail of {title}"]
    for row in rows:
        lines.append(f"  {row['at'][:19].replace('T', ' ')}  {row['summary']}")
    if not rows:
        lines.append("  no consent record")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow consent",
        description="The consent audit trail of a contact or of a number.",
        epilog="exit codes: 0 ok, 2 usage, 3 broker unreachable",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="every subscription change and number opt-out")
    show.add_argument("account")
    show.add_argument("contact", nargs="?", help="the contact id")
    show.add_argument("--number", help="an E.164 number instead of a contact")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: list[str]) -> int:
    return run_command("consent", build_parser(), argv, _show)


def _show(args: argparse.Namespace, settings: KafkaSettings) -> int:
    if (args.contact is None) == (args.number is None):
        print("smsflow consent show: give a CONTACT or --number N", file=sys.stderr)
        return USAGE
    require_broker(settings)
    history = load_history(settings, args.account, args.contact or "", number=args.number)
    rows = consent_rows(history)
    if args.number:
        masked = mask_phone(args.number)
        rows = [r for r in rows if r["number"] == masked]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        title = f"{mask_phone(args.number)}" if args.number else f"contact {args.contact}"
        print(render(rows, f"{title} (account {args.account})"))
    return OK
