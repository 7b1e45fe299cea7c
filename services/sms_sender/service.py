"""Wires the sender: producer, ledger feed, definitions view, gateway, dispatcher, HTTP
server and request consumer; runs until asked to stop, then drains and commits.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

from aiohttp import web
from aiokafka.errors import KafkaError

from schemas.definitions import Account
from schemas.topics import OPT_OUTS, SMS_LEDGER
from services.common.definitions_view import DefinitionsView
from services.common.logging import get_logger
from services.sms_sender.async_kafka import make_producer
from services.sms_sender.circuit_breaker import CircuitBreaker
from services.sms_sender.consumer import RequestConsumer
from services.sms_sender.dispatcher import Dispatcher
from services.sms_sender.gateway import SmsGateway
from services.sms_sender.http_client import make_session
from services.sms_sender.http_gateway import HttpGateway
from services.sms_sender.ledger import Ledger, RocksStore
from services.sms_sender.ledger_feed import ledger_feed, opt_out_feed
from services.sms_sender.metrics import Metrics
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.opt_outs import OptOutView
from services.sms_sender.publisher import KafkaPublisher
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.redirects import Redirects
from services.sms_sender.reply_ids import RecentIds, ReplyIdFeed
from services.sms_sender.retries import RetryPolicy
from services.sms_sender.server import Server, WebhookConfig
from services.sms_sender.settings import SenderSettings
from services.sms_sender.twilio_gateway import TwilioGateway

log = get_logger("sms_sender")

LEDGER_REBUILD_TIMEOUT_S = 300.0
LEDGER_SYNC_TIMEOUT_S = 10.0
DEFINITIONS_LOAD_TIMEOUT_S = 60.0


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


def known_accounts(feed: DefinitionsView) -> Callable[[], list[Account]]:
    def snapshot() -> list[Account]:
        with feed.lock:
            return list(feed.catalog.accounts.values())

    return snapshot


def number_limits(feed: DefinitionsView, settings: SenderSettings):  # type: ignore[no-untyped-def]
    """A sender number's limits from its account's ``sender_rate``, if it has one."""

    def limits(number: str) -> tuple[float, float] | None:
        with feed.lock:
            for account in feed.catalog.accounts.values():
                rate = account.spec.sender_rate
                if account.spec.sender == number and rate is not None:
                    segments = rate.segments_per_s or settings.sender_segments_per_s
                    return rate.messages_per_s, segments
        return None

    return limits


async def _alive(request: web.Request) -> web.Response:
    """Liveness: the process serves (the ledger may still be rebuilding; /healthz waits)."""
    return web.json_response({"alive": True})


def _webhooks_after(rebuilt: asyncio.Event):  # type: ignore[no-untyped-def]
    """Webhooks need the ledger: until it is rebuilt, providers are asked to retry."""

    @web.middleware
    async def guard(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path.startswith("/webhooks/") and not rebuilt.is_set():
            return web.json_response(
                {"error": "starting"}, status=503, headers={"Retry-After": "5"}
            )
        return await handler(request)

    return guard


async def run(settings: SenderSettings, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set (or a request crashes); returns the exit code."""
    loop = asyncio.get_running_loop()
    writer = uuid.uuid4().hex
    metrics = Metrics()
    tracker = OffsetTracker()
    # A longer linger than the default batches the many small ledger and status writes.
    producer = make_producer(settings, linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    publisher = KafkaPublisher(producer, settings, writer)
    # Rebuilt alongside the ledger: inbound webhooks answer 503 until it is.
    reply_ids = RecentIds(settings.sender_reply_dedup_max)
    reply_feed = ReplyIdFeed(
        settings, reply_ids, settings.sender_reply_dedup_window_s, producer.partitions_for
    )
    reply_feed.start()
    crashed: list[BaseException] = []

    def crash(error: BaseException) -> None:
        crashed.append(error)
        stop.set()

    store = RocksStore(settings.sender_state_dir)
    definitions = DefinitionsView(settings)
    dispatcher = Dispatcher(
        gateway=build_gateway(settings),
        publisher=publisher,
        tracker=tracker,
        public_url=settings.public_url,
        policy=RetryPolicy(
            max_attempts=settings.sender_max_attempts,
            base_s=settings.sender_backoff_base_s,
            cap_s=settings.sender_backoff_cap_s,
            give_up_after_s=settings.sender_give_up_after_s,
        ),
        limiter=RateLimiter(
            settings.sender_messages_per_s,
            settings.sender_segments_per_s,
            limits_for=number_limits(definitions, settings),
            share=lambda: consumers[0].share() if consumers else 1.0,
        ),
        ambiguous_wait_s=settings.sender_ambiguous_wait_s,
        metrics=metrics,
        ledger=Ledger(store, recent=settings.sender_ledger_recent_keys),
        rng=random.Random(),
        on_crash=crash,
        opt_outs=OptOutView(),
        breaker=CircuitBreaker(
            threshold=settings.sender_breaker_threshold,
            cooldown_s=settings.sender_breaker_cooldown_s,
            max_cooldown_s=settings.sender_breaker_max_cooldown_s,
        ),
        replay_window_s=settings.sender_gateway_idempotency_window_s,
        owns=lambda partition: bool(consumers) and consumers[0].owns(partition),
        writer=writer,
        generation=lambda partition: consumers[0].generation if consumers else 0,
        claim_wait_s=settings.sender_connect_timeout_s + settings.sender_request_timeout_s + 5,
    )
    consumers: list[RequestConsumer] = []

    rebuilt = asyncio.Event()

    ready = asyncio.Event()
    server = Server(
        WebhookConfig.from_settings(settings),
        dispatcher,
        publisher,
        metrics,
        known_accounts(definitions),
        ready.is_set,
        reply_ids,
        reply_feed.ready.is_set,
    )
    app = Redirects(dispatcher.ledger, publisher, metrics).register(server.app())
    # Up before the ledger is rebuilt: liveness answers meanwhile; webhooks wait for it.
    app.router.add_get("/livez", _alive)
    app.middlewares.append(_webhooks_after(rebuilt))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.sender_host, settings.sender_port, backlog=1024).start()

    feed = ledger_feed(settings, writer, dispatcher.apply_remote)
    opt_outs = opt_out_feed(settings, dispatcher.opt_outs.apply)
    try:
        await feed.start(await producer.partitions_for(settings.topic(SMS_LEDGER)))
        await opt_outs.start(await producer.partitions_for(settings.topic(OPT_OUTS)))
        await asyncio.wait_for(
            asyncio.gather(feed.barrier(), opt_outs.barrier()), LEDGER_REBUILD_TIMEOUT_S
        )
        feed.on_crash = opt_outs.on_crash = crash
    except BaseException:
        log.error("ledger_rebuild_failed", topic=settings.topic(SMS_LEDGER))
        await feed.stop()
        await opt_outs.stop()
        await reply_feed.stop()
        await producer.stop()
        await dispatcher.gateway.close()
        await runner.cleanup()
        store.close()
        raise
    log.info(
        "ledger_rebuilt",
        keys=len(dispatcher.ledger),
        records=feed.read,
        opted_out_numbers=len(dispatcher.opt_outs),
    )
    rebuilt.set()
    await definitions.start(DEFINITIONS_LOAD_TIMEOUT_S)

    async def announce_ready() -> None:
        # Ready means every webhook can be served: replies need the ids already published.
        await reply_feed.ready.wait()
        ready.set()
        print(f"service_ready sms-sender port={settings.sender_port}", flush=True)
        log.info("service_ready", port=settings.sender_port, api=settings.gateway_api)

    announcing: list[asyncio.Task[None]] = []

    def became_ready() -> None:
        announcing.append(loop.create_task(announce_ready()))

    async def sync_ledger(partitions: set[int]) -> bool:
        """Wait until the feed has read ``partitions`` to the end."""
        try:
            await asyncio.wait_for(feed.barrier(partitions), LEDGER_SYNC_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:  # the broker away: the consumer asks again
            log.warning("ledger_sync_waiting", error=repr(exc))
            return False
        return True

    consumer = RequestConsumer(
        settings,
        tracker,
        dispatcher.submit,
        sync_ledger=sync_ledger,
        on_ready=became_ready,
        on_crash=crash,
        waiting=lambda: dispatcher.waiting,
        blocked=lambda: dispatcher.breaker.is_open,
    )
    consumers.append(consumer)
    consumer.start()
    try:
        await stop.wait()
    finally:
        log.info("shutdown_started", crashed=bool(crashed))
        await consumer.stop(not crashed)
        for task in list(dispatcher.tasks):
            task.cancel()
        await asyncio.gather(*dispatcher.tasks, return_exceptions=True)
        await runner.cleanup()
        await reply_feed.stop()
        await dispatcher.gateway.close()
        await feed.stop()
        await opt_outs.stop()
        await producer.stop()  # sends what is buffered first
        store.close()
        await definitions.stop()
    return 1 if crashed or consumer.error else 0
