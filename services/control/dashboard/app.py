"""``smsflow dashboard``: the live page, served by aiohttp.

``/`` is the page (plain HTML, CSS and a small script under ``static/``, nothing from a
CDN); ``/events`` streams the state as server-sent events; ``/api/state`` is the same
snapshot once, for scripts; ``/healthz`` answers 200 while serving (``caught_up`` tells
whether the topics have been read to their end).

Updates are coalesced: one snapshot is made at most every ``PUSH_S`` and only when the state
changed, and it is shared by every open page, so the cost per second does not grow with
the event rate.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from services.common.settings import KafkaSettings
from services.control.dashboard.feed import Feed
from services.control.dashboard.state import DashboardState

STATIC = Path(__file__).parent / "static"
PUSH_S = 0.25
KEEPALIVE_S = 15.0


class Snapshots:
    """The latest snapshot as JSON text, remade only when the state's version moved."""

    def __init__(self, state: DashboardState, lock: threading.Lock) -> None:
        self.state = state
        self.lock = lock
        self._version = -1
        self._text = "{}"

    def current(self) -> tuple[int, str]:
        with self.lock:
            version = self.state.version
            if version != self._version:
                self._text = json.dumps(self.state.snapshot(datetime.now(UTC)))
                self._version = version
            return self._version, self._text


def build_app(settings: KafkaSettings, start_feed: bool = True) -> web.Application:
    state = DashboardState(prefix=settings.topic_prefix)
    lock = threading.Lock()
    feed = Feed(settings, state, lock)
    snapshots = Snapshots(state, lock)
    app = web.Application()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_state(request: web.Request) -> web.Response:
        _, text = snapshots.current()
        return web.Response(text=text, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "caught_up": feed.caught_up.is_set()})

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sent, quiet = -1, 0.0
        try:
            while True:
                version, text = snapshots.current()
                if version != sent:
                    await response.write(f"data: {text}\n\n".encode())
                    sent, quiet = version, 0.0
                elif quiet >= KEEPALIVE_S:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                await asyncio.sleep(PUSH_S)
                quiet += PUSH_S
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def on_startup(app: web.Application) -> None:
        if start_feed:
            await asyncio.to_thread(feed.start)

    async def on_cleanup(app: web.Application) -> None:
        if start_feed:
            await asyncio.to_thread(feed.stop)

    app.router.add_get("/", index)
    app.router.add_get("/events", events)
    app.router.add_get("/api/state", api_state)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app["state"] = state
    app["lock"] = lock
    return app
