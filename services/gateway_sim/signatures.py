"""Webhook signatures: Twilio's ``X-Twilio-Signature`` and smsflow's ``X-Smsflow-Signature``.

Pure functions so the SMS sender can reuse them to verify what the simulator
(or Twilio) posts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

SMSFLOW_SIGNATURE_HEADER = "X-Smsflow-Signature"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...)).

    ``url`` is the full URL the request is posted to, query string included;
    POST parameters are appended sorted by name, each as name then value.
    """
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str
) -> bool:
    return hmac.compare_digest(twilio_signature(auth_token, url, params), signature)


def smsflow_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_smsflow_signature(secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(smsflow_signature(secret, body), signature)
