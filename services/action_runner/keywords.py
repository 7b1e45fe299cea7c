"""Inbound reply keywords: the whole trimmed body, any case, must be the keyword.

Substring matching ("please don't stop") causes false opt-outs, so only exact words count.
"""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    STOP = "stop"  # opt out of all SMS from the account
    START = "start"  # opt back in
    HELP = "help"  # answer with the account's help text


OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "SUBSCRIBE", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def classify(body: str) -> tuple[Keyword, str] | None:
    """(keyword, the word as normalised) or None for free text."""
    word = body.strip().upper()
    if word in OPT_OUT_WORDS:
        return Keyword.STOP, word
    if word in OPT_IN_WORDS:
        return Keyword.START, word
    if word in HELP_WORDS:
        return Keyword.HELP, word
    return None


def help_text(account_id: str, configured: str | None) -> str:
    if configured and configured.strip():
        return configured.strip()
    return f"{account_id}: Reply STOP to opt out. Msg&data rates may apply."


def start_confirmation(account_id: str) -> str:
    return f"{account_id}: You are resubscribed. Reply HELP for help, STOP to opt out."
