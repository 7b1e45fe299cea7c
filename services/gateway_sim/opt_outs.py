"""The simulated carrier's opt-out list and the keywords that change it."""

from __future__ import annotations

import enum

# Twilio's default opt-out and opt-in keywords.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})


class Keyword(enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    NONE = "none"


def classify_keyword(body: str) -> Keyword:
    """Whole trimmed body, any case; substrings never count ("stop by later" is not STOP)."""
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return Keyword.OPT_IN
    return Keyword.NONE


class OptOutRegistry:
    """Numbers the carrier refuses to send to (Twilio answers 21610 for them)."""

    def __init__(self) -> None:
        self._numbers: set[str] = set()

    def __contains__(self, number: object) -> bool:
        return number in self._numbers

    def add(self, number: str) -> None:
        self._numbers.add(number)

    def discard(self, number: str) -> None:
        self._numbers.discard(number)

    def apply(self, number: str, body: str) -> Keyword:
        """Update the list for an inbound message from ``number``."""
        keyword = classify_keyword(body)
        if keyword is Keyword.OPT_OUT:
            self.add(number)
        elif keyword is Keyword.OPT_IN:
            self.discard(number)
        return keyword

    def numbers(self) -> list[str]:
        return sorted(self._numbers)

    def clear(self) -> None:
        self._numbers.clear()
