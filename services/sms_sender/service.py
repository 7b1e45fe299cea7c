"""Wires the sender: producer, ledger feed, definitions feed, gateway, dispatcher, HTTP
server and request consumer; runs until asked to stop, then drains and commits.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from aiohttp import web

from schemas.ledger import SmsLedgerEntry
from services.common.definitions_feed import DefinitionsFeed
from services.common.kafka import make_producer
from services.common.logging import get_logger
from services.sms_sender.consumer import RequestConsumer
from services.sms_sender.dispatcher import Dispatcher, Job
from services.sms_sender.gateway import SmsGateway
from services.sms_sender.http_client import make_session
from services.sms_sender.http_gateway import HttpGateway
from services.sms_sender.ledger_feed import LedgerFeed
from services.sms_sender.metrics import Metrics
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.publisher import KafkaPublisher
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.retries import RetryPolicy
from services.sms_sender.server import Server, WebhookConfig
from services.sms_sender.settings import SenderSettings
from services.sms_sender.twilio_gateway import TwilioGateway

log = get_logger("sms_sender")

LEDGER_REBUILD_TIMEOUT_S = 300.0


def build_gateway(settings: SenderSettings) -> SmsGateway:
    session = make_session(
        max_connections=settings.sender_max_in_flight,
        connect_timeout_s=settings.sender_connect_timeout_s,
        request_timeout_s=settings.sender_request_timeout_s,
    )
    if settings.gateway_api == "twilio":
        return TwilioGateway(
            settings.gateway_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            session,
        )
    return HttpGateway(settings.gateway_url, session)


def account_finder(feed: DefinitionsFeed):  # type: ignore[no-untyped-def]
    def find(number: str) -> str | None:
        with feed.lock:
            for account in feed.catalog.accounts.values():
                if account.spec.sender == number:
                    return account.metadata.id
        return None

    return find


async def run(settings: SenderSettings, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set (or a request crashes); returns the exit code."""
    loop = asyncio.get_running_loop()
    writer = uuid.uuid4().hex
    metrics = Metrics()
    tracker = OffsetTracker()
    producer = make_producer(settings, max_block_ms=15000)
    publisher = KafkaPublisher(producer, settings, writer)
    crashed: list[BaseException] = []

    def crash(error: BaseException) -> None:
        crashed.append(error)
        stop.set()

    dispatcher = Dispatcher(
        gateway=build_gateway(settings),
        publisher=publisher,
        tracker=tracker,
        public_url=settings.public_url,
        policy=RetryPolicy(
            max_attempts=settings.sender_max_attempts,
            base_s=settings.sender_backoff_base_s,
            cap_s=settings.sender_backoff_cap_s,
        ),
        limiter=RateLimiter(settings.sender_messages_per_s, settings.sender_segments_per_s),
        ambiguous_wait_s=settings.sender_ambiguous_wait_s,
        metrics=metrics,
        rng=random.Random(),
        on_crash=crash,
    )

    def deliver(batch: list[tuple[SmsLedgerEntry, int]]) -> None:
        loop.call_soon_threadsafe(dispatcher.apply_remote, batch)

    feed = LedgerFeed(settings, writer, deliver).start()
    rebuilt = await loop.run_in_executor(None, feed.barrier().wait, LEDGER_REBUILD_TIMEOUT_S)
    if not rebuilt:
        log.error("ledger_rebuild_timed_out")
        return 1
    log.info("ledger_rebuilt", keys=len(dispatcher.ledger), records=feed.read)
    definitions = DefinitionsFeed(settings)
    await loop.run_in_executor(None, definitions.start, 60.0)

    ready = asyncio.Event()
    server = Server(
        WebhookConfig(
            settings.public_url,
            settings.webhook_secret.get_secret_value(),
            settings.twilio_auth_token.get_secret_value(),
        ),
        dispatcher,
        publisher,
        metrics,
        account_finder(definitions),
        ready.is_set,
    )
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.sender_host, settings.sender_port, backlog=1024).start()

    def became_ready() -> None:
        ready.set()
        print(f"service_ready sms-sender port={settings.sender_port}", flush=True)
        log.info("service_ready", port=settings.sender_port, api=settings.gateway_api)

    def submit(jobs: list[Job]) -> None:
        loop.call_soon_threadsafe(dispatcher.submit, jobs)

    def on_ready() -> None:
        loop.call_soon_threadsafe(became_ready)

    consumer = RequestConsumer(
        settings,
        tracker,
        submit,
        sync_ledger=lambda partitions: feed.barrier(partitions).wait(30.0),
        on_ready=on_ready,
    ).start()
    try:
        await stop.wait()
    finally:
        log.info("service_stopping", crashed=bool(crashed))
        await loop.run_in_executor(None, consumer.stop, settings.sender_drain_wait_s)
        for task in list(dispatcher.tasks):
            task.cancel()
        await asyncio.gather(*dispatcher.tasks, return_exceptions=True)
        await runner.cleanup()
        await dispatcher.gateway.close()
        await loop.run_in_executor(None, producer.flush, 10)
        producer.close(timeout=5)
        feed.stop()
        definitions.stop()
    return 1 if crashed or consumer.error else 0
