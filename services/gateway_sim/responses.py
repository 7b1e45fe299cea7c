"""JSON responses shared by the handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .faults import Fault, FaultConfig
from .validation import INTERNAL_ERROR, TOO_MANY_REQUESTS, UNAVAILABLE, ApiError


def dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def read_json_object(request: web.Request) -> dict[str, object] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def bad_request(message: str) -> web.Response:
    return json_response({"error": "bad_request", "message": message}, 400)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return raw_json_response(dump(payload), status, headers)


def raw_json_response(
    body: bytes, status: int, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def refusal(fault: Fault, config: FaultConfig, *, twilio: bool) -> web.Response:
    """The answer to a request refused by a fault (never processed, so never stored)."""
    error: ApiError = {
        Fault.FAIL_500: INTERNAL_ERROR,
        Fault.FAIL_503: UNAVAILABLE,
    }.get(fault, TOO_MANY_REQUESTS)
    headers = {"Retry-After": str(config.retry_after_s)} if fault is Fault.THROTTLE else None
    body = error.twilio_body() if twilio else error.generic_body()
    return json_response(body, error.status, headers)


# What a reverse proxy (nginx) in front of the provider answers when the upstream's
# answer did not reach it: HTML, not the provider's error shape.
_PROXY_502 = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"


def proxy_bad_gateway() -> web.Response:
    """The error-after-accept fault: the request was processed, the client sees a 502."""
    return web.Response(body=_PROXY_502, status=502, content_type="text/html")
