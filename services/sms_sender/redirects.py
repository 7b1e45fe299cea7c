"""``GET /r/<code>``: the public redirect of tracked SMS links (DESIGN A8).

A known code answers 302 to the original URL once its click is on ``sms-clicks``; anything
else (a malformed or unknown code) gets the same 404 as a path that does not exist, so the
endpoint tells nothing about which codes exist.

Codes come from the ledger: the request's ``links`` travel in every ``sms-ledger`` entry of
its key, so every sender rebuilds them at start-up with the rest of the ledger and learns
those written by other senders from its feed. No store of their own to keep or lose.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from schemas.ledger import SmsLedgerEntry
from schemas.sms import SmsLinkClicked
from services.common.links import REDIRECT_PATH, is_code
from services.common.logging import get_logger
from services.sms_sender.ledger import Ledger
from services.sms_sender.metrics import Metrics
from services.sms_sender.publisher import Publisher

log = get_logger("sms_sender")

# A click is recorded before the redirect; a broker slower than this loses the click, not
# the visitor.
CLICK_PUBLISH_TIMEOUT_S = 5.0


def click_event(entry: SmsLedgerEntry, url: str) -> SmsLinkClicked:
    """One click on ``url`` of the SMS ``entry`` (a fresh event id: every click counts)."""
    return SmsLinkClicked(
        account_id=entry.account_id,
        contact_id=entry.contact_id,
        workflow_id=entry.workflow_id,
        message_id=entry.message_id,
        idempotency_key=entry.idempotency_key,
        url=url,
    )


class Redirects:
    def __init__(self, ledger: Ledger, publisher: Publisher, metrics: Metrics) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.metrics = metrics

    def register(self, app: web.Application) -> web.Application:
        app.router.add_get(REDIRECT_PATH + "{code}", self.follow)
        return app

    async def follow(self, request: web.Request) -> web.Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service="sms-sender", webhook="redirect")
        code = request.match_info["code"]
        found = self.ledger.link(code) if is_code(code) else None
        if found is None:
            self.metrics.webhooks.labels("link", "not_found").inc()
            raise web.HTTPNotFound()  # the router's own 404: like any path that does not exist
        entry, url = found
        try:
            await asyncio.wait_for(
                self.publisher.click(click_event(entry, url)), CLICK_PUBLISH_TIMEOUT_S
            )
            result = "clicked"
        except Exception as exc:  # the visitor still gets where the link points
            result = "unrecorded"
            log.error("link_click_unrecorded", error=f"{type(exc).__name__}: {exc}")
        self.metrics.webhooks.labels("link", result).inc()
        log.info(
            "link_clicked",
            result=result,
            idempotency_key=entry.idempotency_key,
            account_id=entry.account_id,
            contact_id=entry.contact_id,
        )
        raise web.HTTPFound(url)
