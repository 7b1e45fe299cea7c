"""``POST /_sim/inbound``: a reply from a handset, forwarded to the sender's webhook."""

from __future__ import annotations

import os

import structlog
from aiohttp import web

from services.common.masking import mask_phone

from .clock import rfc3339, utc_now
from .responses import bad_request, json_response, read_json_object
from .state import SIMULATOR
from .webhooks import WebhookError

log = structlog.get_logger("gateway_sim")
# The caller of /_sim/inbound waits for the forward: a few quick tries, then 502.
INBOUND_ATTEMPTS = 3


async def deliver_inbound(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    payload = await read_json_object(request)
    if payload is None:
        return bad_request('body must be {"from": ..., "to": ..., "body": ...}')
    from_, to, body = payload.get("from"), payload.get("to"), payload.get("body")
    if not (isinstance(from_, str) and isinstance(to, str) and isinstance(body, str)) or not from_:
        return bad_request('"from", "to" and "body" must be strings')

    # The carrier acts on STOP/START itself, whether or not the webhook is up.
    keyword = sim.opt_outs.apply(from_, body)
    settings = sim.settings
    url = settings.inbound_webhook
    try:
        if settings.inbound_api == "twilio":
            message_id = "SM" + os.urandom(16).hex()
            params = {
                "MessageSid": message_id,
                "From": from_,
                "To": to,
                "Body": body,
                "AccountSid": settings.twilio_account_sid,
            }
            status = await sim.webhooks.post_twilio_form(url, params, attempts=INBOUND_ATTEMPTS)
        else:
            message_id = "in_" + os.urandom(16).hex()
            forward = {
                "id": message_id,
                "from": from_,
                "to": to,
                "body": body,
                "received_at": rfc3339(utc_now()),
            }
            status = await sim.webhooks.post_json(url, forward, attempts=INBOUND_ATTEMPTS)
    except WebhookError as exc:
        log.warning("inbound_forward_failed", from_masked=mask_phone(from_), reason=str(exc))
        return json_response({"forwarded": False, "reason": f"webhook unreachable: {exc}"}, 502)
    return json_response(
        {"forwarded": True, "status": status, "id": message_id, "keyword": keyword.value}, 202
    )
