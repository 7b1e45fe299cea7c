"""Send-request checks, error shapes and the carrier's opt-out keywords."""

from __future__ import annotations

import pytest

from services.gateway_sim.opt_outs import Keyword, OptOutRegistry, classify_keyword
from services.gateway_sim.validation import ApiError, check_message

TO, FROM = "+358401234567", "+358451234567"


@pytest.mark.parametrize(
    ("to", "from_", "body", "callback", "code"),
    [
        (TO, FROM, "Hei", None, None),
        (TO, FROM, "Hei", "https://example.test/cb?ik=1", None),
        (None, FROM, "Hei", None, 21604),
        ("", FROM, "Hei", None, 21604),
        (TO, None, "Hei", None, 21603),
        (TO, FROM, None, None, 21602),
        (TO, FROM, "", None, 21602),
        (TO, FROM, 5, None, 21602),
        ("0401234567", FROM, "Hei", None, 21211),
        ("+0401234567", FROM, "Hei", None, 21211),
        ("+12345", FROM, "Hei", None, 21211),
        ("+1234567890123456", FROM, "Hei", None, 21211),
        (TO + " ", FROM, "Hei", None, 21211),
        (TO, FROM, "x" * 1600, None, None),
        (TO, FROM, "x" * 1601, None, 21617),
        (TO, FROM, "Hei", "ftp://example.test", 21609),
        ("+358409999999", FROM, "Hei", None, 21610),
    ],
)
def test_check_message(
    to: object, from_: object, body: object, callback: object, code: int | None
) -> None:
    error = check_message(to, from_, body, callback, {"+358409999999"})
    assert (error.code if error else None) == code


def test_invalid_number_message_names_the_number() -> None:
    error = check_message("12", FROM, "Hei", None, set())
    assert error is not None
    assert error.message == "The 'To' number 12 is not a valid phone number."


def test_error_shapes() -> None:
    error = ApiError(
        400, 21610, "unsubscribed_recipient", "Attempt to send to unsubscribed recipient"
    )
    assert error.twilio_body() == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }
    assert error.generic_body() == {"error": "unsubscribed_recipient", **error.twilio_body()}
    assert ApiError(409, 409, "x", "y").twilio_body()["more_info"] is None


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT),
        (" stop \n", Keyword.OPT_OUT),
        ("StopAll", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("revoke", Keyword.OPT_OUT),
        ("optout", Keyword.OPT_OUT),
        ("start", Keyword.OPT_IN),
        ("UNSTOP", Keyword.OPT_IN),
        ("yes", Keyword.OPT_IN),
        ("stop it", Keyword.NONE),
        ("please stop", Keyword.NONE),
        ("HELP", Keyword.NONE),
        ("", Keyword.NONE),
    ],
)
def test_classify_keyword(body: str, keyword: Keyword) -> None:
    assert classify_keyword(body) is keyword


def test_registry_follows_stop_and_start() -> None:
    registry = OptOutRegistry()
    registry.apply(TO, "STOP")
    assert TO in registry
    registry.apply(TO, "hello")
    assert TO in registry
    registry.apply(TO, "Start")
    assert TO not in registry
    registry.add(FROM)
    assert registry.numbers() == [FROM]
    registry.clear()
    assert registry.numbers() == []
