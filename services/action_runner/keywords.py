"""What an inbound reply asks of the runner, by the shared keyword rules (DESIGN A8).

The rules themselves (normalising, first word, opt-in stricter than opt-out) live in
``services.common.keywords`` so that the runner and the sender's webhook decide alike.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.definitions import AccountSpec
from services.common.keywords import match


class Keyword(StrEnum):
    STOP = "stop"  # opt the number out of all SMS from the account
    START = "start"  # opt the number back in
    HELP = "help"  # answer with the account's help text


_KINDS = {"opt_out": Keyword.STOP, "opt_in": Keyword.START, "help": Keyword.HELP}


def classify(body: str, spec: AccountSpec | None = None) -> tuple[Keyword, str] | None:
    """(keyword, the phrase matched, upper-case) or None for free text."""
    found = match(
        body,
        spec.opt_out_keywords if spec else (),
        spec.opt_in_keywords if spec else (),
        spec.help_keywords if spec else (),
    )
    return (_KINDS[found.kind], found.keyword.upper()) if found else None


def help_text(account_id: str, configured: str | None) -> str:
    if configured and configured.strip():
        return configured.strip()
    return f"{account_id}: Reply STOP to opt out. Msg&data rates may apply."


def start_confirmation(account_id: str) -> str:
    return f"{account_id}: You are resubscribed. Reply HELP for help, STOP to opt out."
