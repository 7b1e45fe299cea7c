"""The sender's HTTP server: delivery-callback and inbound-reply webhooks (signatures
verified, persisted to Kafka before answering 2xx), ``/healthz`` and ``/metrics``.

Both API styles are accepted on the same paths: a form body signed with
``X-Twilio-Signature`` (HMAC-SHA1 with the auth token over the public URL and the sorted
parameters), or a JSON body signed with ``X-Smsflow-Signature`` (HMAC-SHA256 of the body).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from schemas.sms import InboundSms
from services.common.codec import describe_validation_error
from services.common.dead_letters import dead_letter
from services.common.logging import get_logger
from services.common.masking import mask_phone
from services.common.signatures import (
    SMSFLOW_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_HEADER,
    verify_smsflow_signature,
    verify_twilio_signature,
)
from services.sms_sender import callbacks
from services.sms_sender.dispatcher import Dispatcher
from services.sms_sender.metrics import Metrics
from services.sms_sender.publisher import Publisher

log = get_logger("sms_sender")

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@dataclass
class WebhookConfig:
    public_url: str
    webhook_secret: str
    twilio_auth_token: str


class Rejection(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Server:
    config: WebhookConfig
    dispatcher: Dispatcher
    publisher: Publisher
    metrics: Metrics
    find_account: Callable[[str], str | None]  # receiving number -> account id
    ready: Callable[[], bool]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_post("/webhooks/status", self.report_status)
        app.router.add_post("/webhooks/inbound", self.receive_inbound)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.ready()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain")

    async def report_status(self, request: web.Request) -> web.Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service="sms-sender", webhook="status")
        try:
            twilio, payload = await self._verified(request)
            ik = request.query.get("ik")
            report = (
                callbacks.twilio_report(payload, ik)
                if twilio
                else callbacks.generic_report(payload, payload.get("idempotency_key") or ik)
            )
        except (Rejection, callbacks.PayloadError) as exc:
            return self._reject("status", exc)
        result = await self.dispatcher.report_delivery(report)
        self.metrics.webhooks.labels("status", result).inc()
        (log.debug if result == "ignored" else log.info)(
            "delivery_reported",
            result=result,
            status=report.status,
            provider_message_id=report.provider_message_id,
            idempotency_key=report.idempotency_key,
        )
        if result == "unmatched":
            # Perhaps written by another sender and not read here yet: ask for a retry.
            return web.json_response(
                {"error": "unknown message"}, status=503, headers={"Retry-After": "5"}
            )
        return web.json_response({"ok": True, "result": result})

    async def receive_inbound(self, request: web.Request) -> web.Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service="sms-sender", webhook="inbound")
        try:
            twilio, payload = await self._verified(request)
            reply = (
                callbacks.twilio_inbound(payload) if twilio else callbacks.generic_inbound(payload)
            )
        except (Rejection, callbacks.PayloadError) as exc:
            return self._reject("inbound", exc)
        account = self.find_account(reply.to)
        try:
            if account is None:
                raise Rejection(400, f"to: no account sends from {mask_phone(reply.to)}")
            event = InboundSms.model_validate(
                {
                    "account_id": account,
                    "from": reply.from_,
                    "to": reply.to,
                    "body": reply.body,
                    "provider_message_id": reply.provider_message_id,
                }
            )
        except (Rejection, ValidationError) as exc:
            reason = exc.reason if isinstance(exc, Rejection) else describe_validation_error(exc)
            # Keep it (a STOP must not be lost): SREs can replay it once the cause is fixed.
            await self.publisher.dead_letter(
                dead_letter(
                    service="sms-sender",
                    topic="webhooks/inbound",
                    partition=-1,
                    offset=-1,
                    key=None,
                    value=await request.read(),
                    reason=reason,
                )
            )
            return self._reject("inbound", Rejection(400, reason))
        await self.publisher.inbound(event)  # acknowledged by Kafka before we answer
        self.metrics.webhooks.labels("inbound", "recorded").inc()
        log.info("inbound_received", account_id=account, from_=reply.from_)
        if twilio:
            return web.Response(text=TWIML_EMPTY, content_type="text/xml")
        return web.json_response({"ok": True})

    async def _verified(self, request: web.Request) -> tuple[bool, dict[str, Any]]:
        """(is Twilio-style, payload) once the signature checks out; else ``Rejection``."""
        raw = await request.read()
        twilio_signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
        if twilio_signature is not None:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            url = self.config.public_url + request.path_qs
            if not verify_twilio_signature(
                self.config.twilio_auth_token, url, form, twilio_signature
            ):
                raise Rejection(403, "bad X-Twilio-Signature")
            return True, form
        signature = request.headers.get(SMSFLOW_SIGNATURE_HEADER)
        if signature is None or not verify_smsflow_signature(
            self.config.webhook_secret, raw, signature
        ):
            raise Rejection(403, f"missing or bad {SMSFLOW_SIGNATURE_HEADER}")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise Rejection(400, "body: malformed JSON") from exc
        if not isinstance(payload, dict):
            raise Rejection(400, "body: expected a JSON object")
        return False, payload

    def _reject(self, kind: str, exc: Exception) -> web.Response:
        status = exc.status if isinstance(exc, Rejection) else 400
        reason = exc.reason if isinstance(exc, Rejection) else str(exc)
        self.metrics.webhooks.labels(kind, f"rejected_{status}").inc()
        log.warning("webhook_rejected", kind=kind, status=status, reason=reason)
        return web.json_response({"error": reason}, status=status)
