"""The wire under both adapters: one aiohttp session, and what a transport error or a
refusal means for a send (before the request left: refused; after: ambiguous).

A 408 or 5xx answer is ambiguous too: Twilio can answer 5xx after creating the message, and
a proxy in front of a provider answers 502/504 whatever the provider did. Only 429, 409 and
425, which say the request was not taken, are plain refusals.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from services.sms_sender.gateway import Ambiguous, Refused, Rejected
from services.sms_sender.retries import parse_retry_after

# Provider codes that mean "not now" even on a 4xx: Twilio's sender queue is full (21611).
TRANSIENT_CODES = frozenset({"21611"})


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def make_session(
    *, max_connections: int, connect_timeout_s: float, request_timeout_s: float
) -> aiohttp.ClientSession:
    # ``connect`` covers waiting for a pooled connection too: the request has not left.
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout_s, sock_read=request_timeout_s
    )
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30)
    return aiohttp.ClientSession(timeout=timeout, connector=connector)


async def post(
    session: aiohttp.ClientSession, url: str, **options: Any
) -> Response | Refused | Ambiguous | Rejected:
    """POST and read the answer; transport failures become outcomes."""
    try:
        async with session.post(url, **options) as answer:
            body = await answer.read()
            return Response(answer.status, answer.headers, body)
    except aiohttp.ConnectionTimeoutError:
        return Refused("connect_timeout")
    except aiohttp.ClientConnectorError:
        return Refused("connection_failed")
    except TimeoutError:
        return Ambiguous("timeout")
    except (aiohttp.ClientError, asyncio.IncompleteReadError):
        return Ambiguous("connection_lost")
    except (ValueError, TypeError, UnicodeError) as exc:
        # aiohttp refuses the request itself (a CR/LF in a header): it never left, and
        # sending it again would fail the same way.
        return Rejected("invalid_request", 0, type(exc).__name__)


def classify_failure(response: Response) -> Rejected | Refused | Ambiguous:
    """A non-2xx answer: 409/425/429 were not processed (retry); 408/5xx may have been
    (ambiguous); other 4xx are final."""
    payload = response.json()
    code = payload.get("code")
    error_code = str(code) if isinstance(code, int | str) and code != "" else None
    status = response.status
    if status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
        return Ambiguous(f"http_{status}", status, error_code, retry_after)
    if status in (409, 425, 429) or error_code in TRANSIENT_CODES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
        reason = {409: "key_in_flight", 429: "throttled"}.get(status, f"http_{status}")
        if error_code in TRANSIENT_CODES:
            reason = "sender_queue_full"
        return Refused(reason, status, error_code, retry_after)
    detail = payload.get("message")
    return Rejected(error_code or str(status), status, detail if isinstance(detail, str) else "")
