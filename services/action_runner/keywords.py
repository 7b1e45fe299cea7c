"""Inbound reply keywords (DESIGN A8): normalise the reply, then compare its first word.

Normalising (Unicode NFKC, case-folded, surrounding whitespace, quotes and punctuation
removed) makes "Stop.", "STOP!" and a full-width STOP (U+FF33...) the same word; comparing only
the first word makes "stop please" an opt-out but keeps "please don't stop" free text
(substring matching causes false opt-outs). Two-word keywords ("opt out") compare the
first two words.

Opt-in is stricter than opt-out: the whole reply must be the opt-in word ("start" opts in,
"start? no" does not), and YES is not an opt-in word: it only means "yes" as the answer to
a confirmation the account asked for, and smsflow asks for none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from enum import StrEnum

from schemas.definitions import AccountSpec


class Keyword(StrEnum):
    STOP = "stop"  # opt the number out of all SMS from the account
    START = "start"  # opt the number back in
    HELP = "help"  # answer with the account's help text


OPT_OUT_WORDS = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
    "OPT OUT",
)
OPT_IN_WORDS = ("START", "UNSTOP", "SUBSCRIBE")
HELP_WORDS = ("HELP", "INFO")

Words = tuple[str, ...]


def _trim(text: str) -> str:
    """Without surrounding whitespace, quotes and punctuation (Unicode categories P*)."""
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalize(text: str) -> Words:
    """The reply's words, normalised; each word trimmed of punctuation too ("stop," -> stop)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return tuple(w for w in (_trim(part) for part in _trim(folded).split()) if w)


def _phrases(words: Iterable[str]) -> set[Words]:
    return {phrase for phrase in map(normalize, words) if phrase}


def keyword_table(spec: AccountSpec | None = None) -> list[tuple[Words, Keyword]]:
    """Every phrase and what it means, longest first; an account's own words are added."""
    table: dict[Words, Keyword] = {}
    # Opt-out last, so a word an account lists twice counts as the stricter meaning.
    for keyword, defaults, extra in (
        (Keyword.HELP, HELP_WORDS, spec.help_keywords if spec else ()),
        (Keyword.START, OPT_IN_WORDS, spec.opt_in_keywords if spec else ()),
        (Keyword.STOP, OPT_OUT_WORDS, spec.opt_out_keywords if spec else ()),
    ):
        for phrase in _phrases((*defaults, *extra)):
            table[phrase] = keyword
    return sorted(table.items(), key=lambda item: -len(item[0]))


def classify(body: str, spec: AccountSpec | None = None) -> tuple[Keyword, str] | None:
    """(keyword, the phrase matched, upper-case) or None for free text."""
    words = normalize(body)
    for phrase, keyword in keyword_table(spec):
        matched = words == phrase if keyword is Keyword.START else words[: len(phrase)] == phrase
        if matched:
            return keyword, " ".join(phrase).upper()
    return None


def help_text(account_id: str, configured: str | None) -> str:
    if configured and configured.strip():
        return configured.strip()
    return f"{account_id}: Reply STOP to opt out. Msg&data rates may apply."


def start_confirmation(account_id: str) -> str:
    return f"{account_id}: You are resubscribed. Reply HELP for help, STOP to opt out."
