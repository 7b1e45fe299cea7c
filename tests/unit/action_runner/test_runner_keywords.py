"""Inbound keywords: exact match after trimming, any case."""

from __future__ import annotations

import pytest

from services.action_runner.keywords import Keyword, classify, help_text


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOPALL",
        "unsubscribe",
        "CANCEL",
        "end",
        "QUIT",
        "revoke",
        "OPTOUT",
        "\tstop\n",
    ],
)
def test_opt_out_words(body: str) -> None:
    match = classify(body)
    assert match is not None
    assert match[0] is Keyword.STOP
    assert match[1] == body.strip().upper()


@pytest.mark.parametrize("body", ["START", "unstop", "Subscribe", "yes"])
def test_opt_in_words(body: str) -> None:
    assert classify(body) == (Keyword.START, body.strip().upper())


@pytest.mark.parametrize("body", ["HELP", "info", " Help "])
def test_help_words(body: str) -> None:
    assert classify(body) == (Keyword.HELP, body.strip().upper())


@pytest.mark.parametrize(
    "body",
    [
        "please stop",
        "STOP!",
        "don't stop",
        "stopp",
        "S T O P",
        "",
        "ok thanks",
        "startup",
        "helpful",
        "opt out",
    ],
)
def test_free_text_is_not_a_keyword(body: str) -> None:
    assert classify(body) is None


def test_help_text_default_and_configured() -> None:
    assert help_text("acme", None) == "acme: Reply STOP to opt out. Msg&data rates may apply."
    assert help_text("acme", " Acme: call 555 ") == "Acme: call 555"
