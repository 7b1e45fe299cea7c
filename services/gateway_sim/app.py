"""The aiohttp application: routes, request ledger middleware, webhook session, serving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import structlog
from aiohttp import web

from . import control, generic_api, inbound, twilio_api
from .responses import json_response
from .settings import SimSettings
from .simulator import Simulator
from .state import SIMULATOR
from .webhooks import WebhookClient

log = structlog.get_logger("gateway_sim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTROL_PREFIX = "/_sim/"


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep ``/_sim/`` to loopback peers; log every other request in the ledger."""
    if request.path.startswith(CONTROL_PREFIX):
        if not control.is_loopback(request.remote):
            return json_response({"error": "forbidden", "message": "loopback only"}, 403)
        return await handler(request)
    headers = request.headers
    key = headers.get("Idempotency-Key") or headers.get("I-Idempotency-Key")
    sim = request.app[SIMULATOR]
    entry = sim.ledger.record_request(request.method, request.path, key, time.time())
    if sim.config.down:
        return _hang_up(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        entry.status = exc.status
        raise
    entry.status = response.status
    return response


def _hang_up(request: web.Request) -> web.StreamResponse:
    """The outage fault: close the connection without a word, as a dead upstream does."""
    if request.transport is not None:
        request.transport.abort()
    # Never written: the transport is gone. aiohttp only needs a response object.
    return web.Response(status=503)


def build_app(settings: SimSettings, simulator: Simulator | None = None) -> web.Application:
    sim = simulator or Simulator(settings)
    app = web.Application(middlewares=[observe_requests])
    app[SIMULATOR] = sim
    app.cleanup_ctx.append(_webhook_session)
    app.router.add_post("/v1/messages", generic_api.create_message)
    app.router.add_post(
        "/2010-04-01/Accounts/{account_sid}/Messages.json", twilio_api.create_message
    )
    app.router.add_get("/_sim/health", control.health)
    app.router.add_get("/_sim/messages", control.list_messages)
    app.router.add_get("/_sim/requests", control.list_requests)
    app.router.add_post("/_sim/reset", control.reset)
    app.router.add_get("/_sim/config", control.show_config)
    app.router.add_post("/_sim/config", control.update_config)
    app.router.add_get("/_sim/opt-outs", control.list_opt_outs)
    app.router.add_post("/_sim/opt-outs", control.add_opt_out)
    app.router.add_delete("/_sim/opt-outs/{number}", control.remove_opt_out)
    app.router.add_post("/_sim/inbound", inbound.deliver_inbound)
    return app


async def _webhook_session(app: web.Application) -> AsyncIterator[None]:
    """One shared client session for all callbacks and inbound forwards."""
    sim = app[SIMULATOR]
    timeout = aiohttp.ClientTimeout(total=sim.settings.callback_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sim.attach(
            WebhookClient(
                session,
                webhook_secret=sim.settings.webhook_secret,
                twilio_auth_token=sim.settings.twilio_auth_token,
                attempts=sim.settings.callback_attempts,
            )
        )
        yield
        await sim.close()


def listening_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(settings: SimSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; prints the readiness line once the port is bound."""
    # A short shutdown grace: the only slow handlers are timeout-fault answers, which
    # are meant to be late anyway, and `smsflow dev down` should not wait for them.
    runner = web.AppRunner(
        build_app(settings), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else settings.port
        print(f"gateway-sim listening on {listening_url(settings.host, port)}", flush=True)
        log.info("gateway_sim_started", port=port, seed=settings.seed)
        await stop.wait()
    finally:
        await runner.cleanup()
