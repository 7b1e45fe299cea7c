"""The sender's HTTP server: delivery-callback and inbound-reply webhooks, ``/healthz`` and
``/metrics``.

Only the configured gateway API's signature scheme is accepted: on ``twilio`` a form body
signed with ``X-Twilio-Signature`` (HMAC-SHA1 with the auth token over the public URL and
the sorted parameters), on ``http`` a JSON body signed with ``X-Smsflow-Signature``
(``t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">``, at most 300 s old). Unsigned or
malformed signatures get 401, wrong or stale ones 403, and nothing is published.

What a webhook publishes is acknowledged by Kafka before it answers 2xx; when Kafka cannot
take it in time the answer is 503, which providers retry (a 400 they would not). Inbound
replies are de-duplicated by the provider's message id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import ValidationError

from schemas.definitions import Account
from schemas.sms import InboundSms, NumberOptOut
from services.common.codec import describe_validation_error
from services.common.dead_letters import dead_letter
from services.common.logging import get_logger
from services.common.signatures import (
    SMSFLOW_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_HEADER,
    SignatureProblem,
    check_smsflow_signature,
    check_twilio_signature,
)
from services.sms_sender import callbacks
from services.sms_sender.dispatcher import Dispatcher
from services.sms_sender.metrics import Metrics
from services.sms_sender.publisher import Publisher
from services.sms_sender.replies import reply_events
from services.sms_sender.reply_ids import RecentIds
from services.sms_sender.settings import GatewayApi, SenderSettings

log = get_logger("sms_sender")

T = TypeVar("T")

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
RETRY_AFTER_S = "5"


@dataclass(frozen=True)
class WebhookConfig:
    public_url: str
    api: GatewayApi  # the one signature scheme accepted
    secret: str  # its key: the webhook secret or the Twilio auth token
    publish_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: SenderSettings) -> WebhookConfig:
        return cls(
            settings.public_url,
            settings.gateway_api,
            settings.webhook_key(),
            settings.sender_webhook_publish_timeout_s,
        )


class Rejection(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Unavailable(Exception):
    """Kafka did not acknowledge in time: the provider is asked to retry (503)."""


@dataclass
class Server:
    config: WebhookConfig
    dispatcher: Dispatcher
    publisher: Publisher
    metrics: Metrics
    accounts: Callable[[], Sequence[Account]]  # a snapshot of the known accounts
    ready: Callable[[], bool]
    reply_ids: RecentIds = field(default_factory=lambda: RecentIds(100_000))
    # Whether ``reply_ids`` holds what was published before this process started.
    reply_ids_ready: Callable[[], bool] = lambda: True

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

    # ------------------------------------------------------------ delivery callbacks

    async def report_status(self, request: web.Request) -> web.Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service="sms-sender", webhook="status")
        try:
            payload = await self._verified(request)
            ik = request.query.get("ik")
            report = (
                callbacks.twilio_report(payload, ik)
                if self.twilio
                else callbacks.generic_report(payload, payload.get("idempotency_key") or ik)
            )
        except (Rejection, callbacks.PayloadError) as exc:
            return self._reject("status", exc)
        try:
            result = await self._kafka(self.dispatcher.report_delivery(report))
        except Unavailable as exc:
            return self._unavailable("status", str(exc))
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
                {"error": "unknown message"}, status=503, headers={"Retry-After": RETRY_AFTER_S}
            )
        return web.json_response({"ok": True, "result": result})

    # ------------------------------------------------------------ inbound replies

    async def receive_inbound(self, request: web.Request) -> web.Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service="sms-sender", webhook="inbound")
        try:
            payload = await self._verified(request)
            reply = (
                callbacks.twilio_inbound(payload)
                if self.twilio
                else callbacks.generic_inbound(payload)
            )
        except (Rejection, callbacks.PayloadError) as exc:
            return self._reject("inbound", exc)
        provider_id = reply.provider_message_id
        structlog.contextvars.bind_contextvars(provider_message_id=provider_id)
        if not self.reply_ids_ready():
            return self._unavailable("inbound", "replies published before start not read yet")
        if not self.reply_ids.claim(provider_id):
            if provider_id not in self.reply_ids:  # a repeat while the first is in flight
                return self._unavailable("inbound", "the same reply is being published")
            self.metrics.webhooks.labels("inbound", "duplicate").inc()
            log.info("inbound_duplicate")
            return self._accepted({"ok": True, "result": "duplicate"})
        published = False
        try:
            answer = await self._publish_reply(reply, await request.read())
            published = True
            return answer
        except Unavailable as exc:
            return self._unavailable("inbound", str(exc))
        finally:
            self.reply_ids.release(provider_id, published)

    async def _publish_reply(self, reply: callbacks.InboundReply, raw: bytes) -> web.Response:
        try:
            events = reply_events(reply, self.accounts())
        except ValidationError as exc:
            reason = describe_validation_error(exc)
            await self._keep(raw, reason)
            return self._reject("inbound", Rejection(400, reason))
        inbound = [e for e in events if isinstance(e, InboundSms)]
        opt_outs = [e for e in events if isinstance(e, NumberOptOut)]
        if inbound:
            (event,) = inbound
            await self._kafka(self.publisher.inbound(event))
            self.metrics.webhooks.labels("inbound", "recorded").inc()
            log.info("inbound_received", account_id=event.account_id, from_=reply.from_)
            return self._accepted({"ok": True, "result": "recorded"})
        if opt_outs:
            # Nobody sends from ``to``: a STOP still opts the number out, everywhere.
            await self._kafka(self.publisher.opt_outs(opt_outs))
            self.metrics.webhooks.labels("inbound", "opted_out_unknown_to").inc()
            log.warning(
                "inbound_to_unknown_number_opted_out",
                to=reply.to,
                from_=reply.from_,
                accounts=[e.account_id for e in opt_outs],
            )
            return self._accepted({"ok": True, "result": "opted_out"})
        # Not attributable and no STOP: kept for operators, and not retried in vain.
        await self._keep(raw, "to: no account sends from this number")
        self.metrics.webhooks.labels("inbound", "unknown_to").inc()
        log.warning("inbound_to_unknown_number", to=reply.to)
        return self._accepted({"ok": True, "result": "unknown_to"})

    async def _keep(self, raw: bytes, reason: str) -> None:
        """Dead-letter a reply nothing else can take, so SREs can replay it once fixed."""
        letter = dead_letter(
            service="sms-sender",
            topic="webhooks/inbound",
            partition=-1,
            offset=-1,
            key=None,
            value=raw,
            reason=reason,
        )
        await self._kafka(self.publisher.dead_letter(letter))

    # ------------------------------------------------------------ edges

    @property
    def twilio(self) -> bool:
        return self.config.api == "twilio"

    def _accepted(self, body: dict[str, Any]) -> web.Response:
        if self.twilio:  # an empty TwiML answer: no auto-reply
            return web.Response(text=TWIML_EMPTY, content_type="text/xml")
        return web.json_response(body)

    async def _kafka(self, write: Awaitable[T]) -> T:
        """``write``'s result once Kafka acknowledged it, else ``Unavailable``. A write that
        times out is left to finish: the provider's retry then finds it done."""
        task = asyncio.ensure_future(write)
        task.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.config.publish_timeout_s)
        except TimeoutError as exc:
            raise Unavailable(
                f"kafka: no acknowledgement in {self.config.publish_timeout_s}s"
            ) from exc
        except Exception as exc:
            raise Unavailable(f"kafka: {type(exc).__name__}: {exc}") from exc

    async def _verified(self, request: web.Request) -> dict[str, Any]:
        """The payload once the configured scheme's signature checks out; else ``Rejection``."""
        raw = await request.read()
        if self.twilio:
            form: dict[str, str] | None
            try:
                form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            except (ValueError, UnicodeDecodeError):
                form = None  # a body nobody could have signed: refused like a bad signature
            header = TWILIO_SIGNATURE_HEADER
            url = self.config.public_url + request.path_qs
            problem = check_twilio_signature(
                self.config.secret, url, form or {}, request.headers.get(header)
            )
            if form is None and problem is None:
                problem = SignatureProblem.MISMATCH
            payload: dict[str, Any] = dict(form or {})
        else:
            header = SMSFLOW_SIGNATURE_HEADER
            problem = check_smsflow_signature(self.config.secret, raw, request.headers.get(header))
            payload = {}
        if problem is not None:
            unsigned = problem in (SignatureProblem.MISSING, SignatureProblem.MALFORMED)
            raise Rejection(401 if unsigned else 403, f"{header}: {problem.value}")
        if self.twilio:
            return payload
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise Rejection(400, "body: malformed JSON") from exc
        if not isinstance(decoded, dict):
            raise Rejection(400, "body: expected a JSON object")
        return decoded

    def _reject(self, kind: str, exc: Exception) -> web.Response:
        status = exc.status if isinstance(exc, Rejection) else 400
        reason = exc.reason if isinstance(exc, Rejection) else str(exc)
        self.metrics.webhooks.labels(kind, f"rejected_{status}").inc()
        log.warning("webhook_rejected", kind=kind, status=status, reason=reason)
        return web.json_response({"error": reason}, status=status)

    def _unavailable(self, kind: str, reason: str) -> web.Response:
        self.metrics.webhooks.labels(kind, "unavailable").inc()
        log.warning("webhook_unavailable", kind=kind, reason=reason)
        return web.json_response(
            {"error": reason}, status=503, headers={"Retry-After": RETRY_AFTER_S}
        )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read a late write's outcome so asyncio does not report it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("late_kafka_write_failed", error=repr(task.exception()))
