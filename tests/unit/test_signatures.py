"""Webhook signatures: Twilio's scheme and smsflow's timestamped HMAC-SHA256 header."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from services.common.signatures import (
    SignatureProblem,
    check_smsflow_signature,
    check_twilio_signature,
    smsflow_signature,
    twilio_signature,
    verify_smsflow_signature,
    verify_twilio_signature,
)

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_signature_matches_hand_computed_vector() -> None:
    # The algorithm spelled out: URL, then each POST param sorted by name as name+value.
    signed = (
        URL
        + "CallSidCA1234567890ABCDE"
        + "Caller+14158675309"
        + "Digits1234"
        + "From+14158675309"
        + "To+18005551212"
    )
    expected = base64.b64encode(hmac.new(b"12345", signed.encode(), hashlib.sha1).digest())

    assert twilio_signature("12345", URL, PARAMS) == expected.decode()


def test_twilio_signature_matches_twilios_published_vector() -> None:
    assert twilio_signature("12345", URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    ("token", "url", "params"),
    [
        ("other-token", URL, PARAMS),
        ("12345", URL + "&baz=3", PARAMS),
        ("12345", URL, {**PARAMS, "Digits": "1235"}),
        ("12345", URL, {k: v for k, v in PARAMS.items() if k != "To"}),
    ],
)
def test_twilio_signature_changes_with_any_input(
    token: str, url: str, params: dict[str, str]
) -> None:
    assert not verify_twilio_signature(token, url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_twilio_signature_ignores_param_order() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert twilio_signature("12345", URL, reordered) == twilio_signature("12345", URL, PARAMS)


def test_twilio_signature_without_params_signs_the_url_only() -> None:
    expected = base64.b64encode(hmac.new(b"t", b"http://x/y", hashlib.sha1).digest()).decode()
    assert twilio_signature("t", "http://x/y", {}) == expected


def test_smsflow_signature_signs_timestamp_dot_body_with_hmac_sha256() -> None:
    body = b'{"id":"msg_1","status":"delivered"}'
    expected = hmac.new(b"dev-webhook-secret", b"1700000000." + body, hashlib.sha256).hexdigest()

    signature = smsflow_signature("dev-webhook-secret", body, timestamp=1700000000)

    assert signature == f"t=1700000000,v1={expected}"
    assert verify_smsflow_signature("dev-webhook-secret", body, signature, now=1700000000)
    assert not verify_smsflow_signature("other-secret", body, signature, now=1700000000)
    assert not verify_smsflow_signature(
        "dev-webhook-secret", body + b" ", signature, now=1700000000
    )


def test_smsflow_signature_defaults_to_now() -> None:
    signature = smsflow_signature("s", b"{}")
    assert abs(int(signature.split(",")[0][2:]) - time.time()) < 5
    assert verify_smsflow_signature("s", b"{}", signature)


@pytest.mark.parametrize(
    ("skew_s", "problem"),
    [
        (0, None),
        (300, None),
        (-300, None),
        (301, SignatureProblem.STALE),
        (-301, SignatureProblem.STALE),
    ],
)
def test_smsflow_signature_is_refused_more_than_300_s_away(
    skew_s: int, problem: SignatureProblem | None
) -> None:
    signed_at = 1700000000
    signature = smsflow_signature("s", b"{}", timestamp=signed_at)
    assert check_smsflow_signature("s", b"{}", signature, now=signed_at + skew_s) is problem


def test_a_moved_timestamp_breaks_the_signature() -> None:
    signature = smsflow_signature("s", b"{}", timestamp=1700000000)
    moved = signature.replace("t=1700000000", "t=1700000100")
    assert check_smsflow_signature("s", b"{}", moved, now=1700000100) is SignatureProblem.MISMATCH


def test_any_of_several_v1_values_may_match_during_a_secret_rotation() -> None:
    signature = smsflow_signature("new", b"{}", timestamp=1700000000)
    old = smsflow_signature("old", b"{}", timestamp=1700000000).split(",")[1]
    assert verify_smsflow_signature("new", b"{}", f"{signature},{old}", now=1700000000)
    assert verify_smsflow_signature("old", b"{}", f"{signature},{old}", now=1700000000)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, SignatureProblem.MISSING),
        ("", SignatureProblem.MISSING),
        ("sha256=" + "0" * 64, SignatureProblem.MALFORMED),  # the old, timeless scheme
        ("t=1700000000", SignatureProblem.MALFORMED),
        ("v1=" + "0" * 64, SignatureProblem.MALFORMED),
        ("t=1700000000,t=1700000000,v1=00", SignatureProblem.MALFORMED),
        ("t=17e8,v1=00", SignatureProblem.MALFORMED),
        ("t=1700000000,v1=ÄÖ", SignatureProblem.MALFORMED),
        # full-width digits
        (
            "t=\uff11\uff17" + "\uff10" * 8 + ",v1=00",
            SignatureProblem.MALFORMED,
        ),  # full-width digits
        ("t=1700000000;v1=00", SignatureProblem.MALFORMED),
        ("t=1700000000,v1=00", SignatureProblem.MISMATCH),
    ],
)
def test_malformed_smsflow_headers_are_refused_without_raising(
    header: str | None, problem: SignatureProblem
) -> None:
    assert check_smsflow_signature("s", b"{}", header, now=1700000000) is problem


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, SignatureProblem.MISSING),
        ("ÄÖ==", SignatureProblem.MALFORMED),
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=é", SignatureProblem.MALFORMED),
        ("not base64!", SignatureProblem.MALFORMED),
        ("AAAA", SignatureProblem.MISMATCH),
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", None),
    ],
)
def test_twilio_headers_are_checked_without_raising(
    header: str | None, problem: SignatureProblem | None
) -> None:
    assert check_twilio_signature("12345", URL, PARAMS, header) is problem
