"""Webhook signatures: Twilio's scheme and smsflow's HMAC-SHA256 header."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.gateway_sim.signatures import (
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


def test_smsflow_signature_is_prefixed_hex_hmac_sha256() -> None:
    body = b'{"id":"msg_1","status":"delivered"}'
    expected = hmac.new(b"dev-webhook-secret", body, hashlib.sha256).hexdigest()

    signature = smsflow_signature("dev-webhook-secret", body)

    assert signature == f"sha256={expected}"
    assert verify_smsflow_signature("dev-webhook-secret", body, signature)
    assert not verify_smsflow_signature("other-secret", body, signature)
    assert not verify_smsflow_signature("dev-webhook-secret", body + b" ", signature)
