"""The test ledger and controls are for loopback peers only."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.gateway_sim.app import build_app, listening_url, observe_requests
from services.gateway_sim.control import is_loopback
from services.gateway_sim.settings import SimSettings
from services.gateway_sim.state import SIMULATOR


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_is_loopback(remote: str | None, expected: bool) -> None:
    assert is_loopback(remote) is expected


def _request(path: str, peer: str, app: web.Application) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    return make_mocked_request("GET", path, app=app, transport=transport)


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "peer", "status"),
    [
        ("/_sim/messages", "10.1.2.3", 403),
        ("/_sim/reset", "192.168.0.5", 403),
        ("/_sim/messages", "127.0.0.1", 200),
        ("/_sim/health", "::1", 200),
        ("/v1/messages", "10.1.2.3", 200),  # the provider API itself is open
    ],
)
async def test_control_paths_need_a_loopback_peer(path: str, peer: str, status: int) -> None:
    app = build_app(SimSettings())
    handler: Any = mock.AsyncMock(side_effect=_ok)

    response = await observe_requests(_request(path, peer, app), handler)

    assert response.status == status
    assert handler.await_count == (1 if status == 200 else 0)


@pytest.mark.asyncio
async def test_provider_requests_are_recorded_with_their_status() -> None:
    app = build_app(SimSettings())

    await observe_requests(_request("/v1/messages", "127.0.0.1", app), _ok)
    await observe_requests(_request("/_sim/messages", "127.0.0.1", app), _ok)

    recorded = [r.to_json() for r in app[SIMULATOR].ledger.requests()]
    assert [(r["path"], r["status"]) for r in recorded] == [("/v1/messages", 200)]


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8025"), ("::1", "http://[::1]:8025")],
)
def test_listening_url(host: str, url: str) -> None:
    assert listening_url(host, 8025) == url
