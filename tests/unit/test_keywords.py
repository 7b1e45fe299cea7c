"""Reply keywords (A8): normalised, first word (or "opt out"), per-account extra words."""

from __future__ import annotations

import pytest

from services.common.keywords import classify, match, normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  'Stop!' ", "stop"),
        ("“STOP”", "stop"),
        ("\uff33\uff34\uff2f\uff30", "stop"),  # full-width, folded by NFKC
        ("Opt-Out please", "opt out please"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("stop 🛑", "stop"),
        ("\tLOPETA.\n", "lopeta"),
        ("", ""),
        ("?!", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "Stop.",
        "stop please",
        "STOP!",
        "\uff33\uff34\uff2f\uff30",
        '"stop"',
        "stopall",
        "Unsubscribe me",
        "cancel",
        "END",
        "quit",
        "OPTOUT",
        "revoke",
        "opt out",
        "Opt-out!",
        "OPT OUT now",
    ],
)
def test_default_opt_out_words(text: str) -> None:
    assert classify(text) == "opt_out"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("START", "opt_in"),
        ("unstop", "opt_in"),
        ("Subscribe!", "opt_in"),
        ("help", "help"),
        ("INFO?", "help"),
    ],
)
def test_default_opt_in_and_help_words(text: str, expected: str) -> None:
    assert classify(text) == expected


@pytest.mark.parametrize(
    "text",
    ["YES", "please don't stop", "stopped", "s.t.o.p", "opt", "out", "", "Thanks! STOP"],
)
def test_free_text_and_yes_are_no_keyword(text: str) -> None:
    assert classify(text) is None


@pytest.mark.parametrize("text", ["start? no", "start over later", "subscribe me not"])
def test_opt_in_needs_the_whole_reply(text: str) -> None:
    assert classify(text) is None


def test_account_words_add_to_the_defaults() -> None:
    assert classify("Lopeta.") is None
    assert classify("Lopeta.", opt_out_extra=["LOPETA"]) == "opt_out"
    assert classify("aloita", opt_in_extra=["ALOITA"]) == "opt_in"
    assert classify("apua!", help_extra=["APUA"]) == "help"
    assert classify("STOP", opt_out_extra=["LOPETA"]) == "opt_out"


def test_multi_word_account_keywords_compare_the_leading_words() -> None:
    assert classify("ei kiitos", opt_out_extra=["EI KIITOS"]) == "opt_out"
    assert classify("ei", opt_out_extra=["EI KIITOS"]) is None


def test_a_word_listed_as_opt_in_and_opt_out_opts_out() -> None:
    assert classify("joo", opt_out_extra=["JOO"], opt_in_extra=["JOO"]) == "opt_out"


def test_match_names_the_keyword_as_normalised() -> None:
    found = match("Opt-Out!")
    assert found is not None
    assert (found.kind, found.keyword) == ("opt_out", "opt out")
    assert match("hello") is None
