"""``POST /2010-04-01/Accounts/{sid}/Messages.json``: the Twilio-shaped form API.

Like Twilio, it does not de-duplicate: every accepted request is a new message,
whatever idempotency header the client sends.
"""

from __future__ import annotations

import base64
import hmac
import os
from typing import Any

from aiohttp import hdrs, web

from services.common.segments import count_segments

from .callbacks import API_VERSION
from .clock import rfc2822, utc_now
from .faults import Fault
from .ledger import MessageRecord
from .responses import json_response, proxy_bad_gateway, refusal
from .simulator import Simulator
from .state import SIMULATOR
from .validation import ApiError, check_message

UNAUTHORIZED = ApiError(401, 20003, "unauthorized", "Authenticate")


async def create_message(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    fault = sim.faults.decide()
    if fault.refuses:
        await sim.pause()
        return refusal(fault, sim.config, twilio=True)

    account_sid = request.match_info["account_sid"]
    if not _authorized(request.headers.get(hdrs.AUTHORIZATION), account_sid, sim):
        await sim.pause()
        return json_response(
            UNAUTHORIZED.twilio_body(),
            UNAUTHORIZED.status,
            {"WWW-Authenticate": 'Basic realm="Twilio API"'},
        )

    form = await request.post()
    to, from_, body = _text(form.get("To")), _text(form.get("From")), _text(form.get("Body"))
    callback = _text(form.get("StatusCallback")) or None
    await sim.pause()
    error = check_message(to, from_, body, callback, sim.opt_outs)
    if error is not None:
        response = json_response(error.twilio_body(), error.status)
    else:
        assert to is not None
        assert from_ is not None
        assert body is not None
        key = request.headers.get("I-Idempotency-Key") or request.headers.get("Idempotency-Key")
        now = utc_now()
        segments, encoding, _ = count_segments(body)
        record = MessageRecord(
            id="SM" + os.urandom(16).hex(),
            api="twilio",
            to=to,
            from_=from_,
            body=body,
            idempotency_key=key,
            received_at=now.timestamp(),
            status="queued",
            segments=segments,
            encoding=encoding,
            status_callback=callback,
            account_sid=account_sid,
        )
        sim.accept(record)
        response = json_response(_resource(record, rfc2822(now)), 201)

    if fault is Fault.TIMEOUT:
        await sim.answer_late()
    if fault is Fault.ERROR_AFTER_ACCEPT:
        return proxy_bad_gateway()
    return response


def _authorized(header: str | None, account_sid: str, sim: Simulator) -> bool:
    """HTTP Basic auth as Twilio does it: the account SID and the auth token."""
    credentials = basic_credentials(header)
    if credentials is None:
        return False
    login, password = credentials
    token = sim.settings.twilio_auth_token
    login_ok = hmac.compare_digest(login.encode(), account_sid.encode())
    return hmac.compare_digest(password.encode(), token.encode()) and login_ok


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(login, password)`` from an ``Authorization: Basic ...`` header, else None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # bad base64 or bad UTF-8
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _resource(record: MessageRecord, created: str) -> dict[str, Any]:
    """Twilio's Message resource as returned by the create call."""
    uri = f"/{API_VERSION}/Accounts/{record.account_sid}/Messages/{record.id}"
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "body": record.body,
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record.from_,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": str(record.segments),
        "price": None,
        "price_unit": "USD",
        "sid": record.id,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": record.to,
        "uri": f"{uri}.json",
    }
