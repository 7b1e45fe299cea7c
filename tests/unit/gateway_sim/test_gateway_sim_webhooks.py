"""Callbacks are asked for again when the receiver answers 503 or 429, never on a 500."""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.gateway_sim.webhooks import WebhookClient


async def post_to(answers: Iterable[int]) -> tuple[int, int]:
    """(final status, requests received) of one callback to a receiver giving ``answers``."""
    pending = list(answers)
    received = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal received
        received += 1
        return web.Response(status=pending.pop(0), headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_post("/status", receive)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        client = WebhookClient(
            session, webhook_secret="s", twilio_auth_token="t", attempts=4, backoff_s=0.01
        )
        status = await client.post_json(str(server.make_url("/status")), {"status": "sent"})
    return status, received


@pytest.mark.asyncio
async def test_a_receiver_that_asks_for_a_retry_gets_the_callback_again() -> None:
    assert await post_to([503, 429, 200]) == (200, 3)


@pytest.mark.asyncio
async def test_other_answers_are_final() -> None:
    assert await post_to([500]) == (500, 1)
    assert await post_to([400]) == (400, 1)


@pytest.mark.asyncio
async def test_retries_end_with_the_last_answer() -> None:
    assert await post_to([503] * 4) == (503, 4)
