"""Reply keywords (DESIGN A8): which replies opt a number out, back in, or ask for help.

A reply is normalised (Unicode NFKC, case-folded, split into words at whitespace,
punctuation and symbols, so quotes and trailing "!" fall away) and its first word is
compared, plus the two-word "opt out". Only leading words count: "please don't stop" is
free text, while "Stop please", "STOP!" and a full-width "STOP" opt out. Opt-in is
stricter than opt-out: the whole reply must be the opt-in word ("start? no" is free text),
and YES is no opt-in word: it answers only a confirmation the account asked for.
Pure, so the runner and the sender decide alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["opt_out", "opt_in", "help"]

OPT_OUT_DEFAULTS = (
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
OPT_IN_DEFAULTS = ("START", "UNSTOP", "SUBSCRIBE")
HELP_DEFAULTS = ("HELP", "INFO")


def _separates(char: str) -> bool:
    # Whitespace (Z), punctuation and quotes (P), symbols and emoji (S), controls (C).
    return unicodedata.category(char)[0] in "ZPSC"


def words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    cleaned = "".join(" " if _separates(char) else char for char in folded)
    return cleaned.split()


def normalise(text: str) -> str:
    """``"  'Stop!' "`` -> ``"stop"``; ``"Opt-Out please"`` -> ``"opt out please"``."""
    return " ".join(words(text))


@dataclass(frozen=True)
class Match:
    kind: Kind
    keyword: str  # the keyword as normalised, e.g. "stop", "opt out", "lopeta"


def match(
    text: str,
    opt_out_extra: Iterable[str] = (),
    opt_in_extra: Iterable[str] = (),
    help_extra: Iterable[str] = (),
) -> Match | None:
    """The keyword ``text`` starts with, or None for free text. Opt-out words are tried
    first, so a word an account lists twice opts out (consent fails closed)."""
    said = words(text)
    lists: tuple[tuple[Kind, Iterable[str]], ...] = (
        ("opt_out", (*OPT_OUT_DEFAULTS, *opt_out_extra)),
        ("opt_in", (*OPT_IN_DEFAULTS, *opt_in_extra)),
        ("help", (*HELP_DEFAULTS, *help_extra)),
    )
    for kind, keywords in lists:
        for keyword in keywords:
            wanted = words(keyword)
            said_part = said if kind == "opt_in" else said[: len(wanted)]
            if wanted and said_part == wanted:
                return Match(kind, " ".join(wanted))
    return None


def classify(
    text: str,
    opt_out_extra: Iterable[str] = (),
    opt_in_extra: Iterable[str] = (),
    help_extra: Iterable[str] = (),
) -> Kind | None:
    found = match(text, opt_out_extra, opt_in_extra, help_extra)
    return found.kind if found else None
