"""Delivery status callbacks: ``sent``, then ``delivered`` or ``undelivered``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from services.common.masking import mask_phone

from .clock import rfc3339, utc_now
from .faults import DeliveryOutcome
from .ledger import Ledger, MessageRecord
from .webhooks import WebhookClient, WebhookError

log = structlog.get_logger("gateway_sim")

API_VERSION = "2010-04-01"


def generic_status_payload(
    record: MessageRecord, status: str, error_code: int | None
) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": status,
        "error_code": error_code,
        "idempotency_key": record.idempotency_key,
        "to": record.to,
        "occurred_at": rfc3339(utc_now()),
    }


def twilio_status_params(
    record: MessageRecord, status: str, error_code: int | None
) -> dict[str, str]:
    params = {
        "MessageSid": record.id,
        "MessageStatus": status,
        "SmsSid": record.id,
        "SmsStatus": status,
        "From": record.from_,
        "To": record.to,
        "AccountSid": record.account_sid or "",
        "ApiVersion": API_VERSION,
    }
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


async def report_delivery(
    record: MessageRecord,
    *,
    ledger: Ledger,
    webhooks: WebhookClient,
    delay_s: Callable[[], float],
    outcome: Callable[[], DeliveryOutcome],
) -> None:
    """Move ``record`` through sent -> final status, posting each to its callback URL.

    Runs as a fire-and-forget task: every failure is logged and swallowed.
    """
    try:
        ledger.set_status(record.id, "sent")
        await _notify(record, "sent", None, webhooks)
        await asyncio.sleep(delay_s())
        final = outcome()
        ledger.set_status(record.id, final.status, final.error_code)
        await _notify(record, final.status, final.error_code, webhooks)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a callback must never take the server down
        log.warning("callback_crashed", message_id=record.id, error=repr(exc))


async def _notify(
    record: MessageRecord, status: str, error_code: int | None, webhooks: WebhookClient
) -> None:
    url = record.status_callback
    if url is None:
        return
    try:
        if record.api == "twilio":
            params = twilio_status_params(record, status, error_code)
            # One token per callback event, kept across retries so receivers can dedupe.
            await webhooks.post_twilio_form(url, params, idempotency_token=str(uuid.uuid4()))
        else:
            await webhooks.post_json(url, generic_status_payload(record, status, error_code))
    except WebhookError as exc:
        log.warning(
            "callback_failed",
            message_id=record.id,
            to_masked=mask_phone(record.to),
            status=status,
            reason=str(exc),
        )
