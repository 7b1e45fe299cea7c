"""What every pipeline service does around its pipeline: health and metrics pages, and a
run that lasts until SIGTERM or SIGINT and then stops cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

from aiohttp import web


class PipelineService(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def wait(self) -> None: ...


async def run_until_signalled(service: PipelineService) -> None:
    """Starts ``service`` and runs it until a signal (then stops it: in-flight batches finish
    and offsets are committed) or until its pipeline ends, whose error is raised."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await service.start()
    pipeline = asyncio.ensure_future(service.wait())
    await asyncio.wait(
        [pipeline, asyncio.ensure_future(stopping.wait())], return_when="FIRST_COMPLETED"
    )
    await service.stop()
    if pipeline.done() and not pipeline.cancelled() and pipeline.exception() is not None:
        raise pipeline.exception()  # type: ignore[misc]


async def serve_health(
    ready: Callable[[], bool], metrics: Callable[[], bytes], host: str, port: int
) -> web.AppRunner:
    """``/healthz`` (200 once ``ready``, else 503) and ``/metrics`` (Prometheus text)."""

    async def healthz(request: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=metrics(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
