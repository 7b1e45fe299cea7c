"""Inbound keywords (A8): normalised reply, first word (or "opt out"), account words added."""

from __future__ import annotations

import pytest

from schemas.definitions import AccountSpec
from services.action_runner.keywords import Keyword, classify, help_text
from services.common.keywords import words

FINNISH = AccountSpec(
    sender="+358451234567",
    opt_out_keywords=["LOPETA"],
    opt_in_keywords=["aloita"],
    help_keywords=["Apua"],
)


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ("STOP", "STOP"),
        ("stop", "STOP"),
        (" Stop ", "STOP"),
        ("Stop.", "STOP"),
        ("STOP!", "STOP"),
        ("stop please", "STOP"),
        ("Stop, please", "STOP"),
        ('"stop"', "STOP"),
        ("«Stop»", "STOP"),
        ("\uff33\uff34\uff2f\uff30", "STOP"),  # full-width STOP: NFKC makes it ASCII
        ("\tstop\n", "STOP"),
        ("STOPALL", "STOPALL"),
        ("unsubscribe", "UNSUBSCRIBE"),
        ("CANCEL", "CANCEL"),
        ("end", "END"),
        ("QUIT", "QUIT"),
        ("revoke", "REVOKE"),
        ("OPTOUT", "OPTOUT"),
        ("opt out", "OPT OUT"),
        ("Opt  out!", "OPT OUT"),
    ],
)
def test_opt_out_words(body: str, word: str) -> None:
    assert classify(body) == (Keyword.STOP, word)


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ("START", "START"),
        ("unstop", "UNSTOP"),
        ("Subscribe", "SUBSCRIBE"),
        ("\uff33\uff54\uff41\uff52\uff54!", "START"),
    ],
)
def test_opt_in_words(body: str, word: str) -> None:
    assert classify(body) == (Keyword.START, word)


@pytest.mark.parametrize(
    "body", ["yes", "YES", "Yes!", "y", "start? no", "start over later", "subscribe me not"]
)
def test_opt_in_needs_the_whole_reply_and_yes_out_of_context_is_none(body: str) -> None:
    assert classify(body) is None


@pytest.mark.parametrize("body", ["HELP", "info", " Help? "])
def test_help_words(body: str) -> None:
    match = classify(body)
    assert match is not None
    assert match[0] is Keyword.HELP


@pytest.mark.parametrize(
    "body",
    [
        "please stop",
        "don't stop",
        "stopp",
        "S T O P",
        "",
        "   ",
        "!!!",
        "ok thanks",
        "startup",
        "helpful",
        "opt",
        "out",
        "LOPETA",  # an account's word, not a default
    ],
)
def test_free_text_is_not_a_keyword(body: str) -> None:
    assert classify(body) is None


@pytest.mark.parametrize(
    ("body", "keyword", "word"),
    [
        ("LOPETA", Keyword.STOP, "LOPETA"),
        ("lopeta kiitos", Keyword.STOP, "LOPETA"),
        ("Aloita.", Keyword.START, "ALOITA"),
        ("apua", Keyword.HELP, "APUA"),
        ("STOP", Keyword.STOP, "STOP"),  # defaults stay
    ],
)
def test_account_words_add_to_the_defaults(body: str, keyword: Keyword, word: str) -> None:
    assert classify(body, FINNISH) == (keyword, word)


def test_a_word_listed_as_both_opts_out() -> None:
    spec = AccountSpec(sender="+358451234567", opt_in_keywords=["STOP"])
    assert classify("stop", spec) == (Keyword.STOP, "STOP")


def test_words_fold_case_width_and_punctuation() -> None:
    assert words("  ¡\uff33\uff34\uff2f\uff30, Please!  ") == ["stop", "please"]
    assert words("Straße") == ["strasse"]


def test_help_text_default_and_configured() -> None:
    assert help_text("acme", None) == "acme: Reply STOP to opt out. Msg&data rates may apply."
    assert help_text("acme", " Acme: call 555 ") == "Acme: call 555"
