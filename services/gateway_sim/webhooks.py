"""Signed POSTs to the sender's webhooks, retried on connection errors and on answers that
ask for a retry (503, 429), as providers do when a receiver says it is unavailable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from services.common.signatures import (
    SMSFLOW_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_HEADER,
    smsflow_signature,
    twilio_signature,
)

TWILIO_IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
# The receiver could not take the request now and asks for it again (its Kafka is away).
RETRY_LATER = frozenset({429, 503})


class WebhookError(Exception):
    """The webhook could not be reached after all attempts."""


class WebhookClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        webhook_secret: str,
        twilio_auth_token: str,
        attempts: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._session = session
        self._secret = webhook_secret
        self._token = twilio_auth_token
        self._attempts = max(attempts, 1)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s

    async def post_json(
        self, url: str, payload: Mapping[str, Any], attempts: int | None = None
    ) -> int:
        """POST JSON signed with ``X-Smsflow-Signature``; returns the response status."""
        body = json.dumps(payload, separators=(",", ":")).encode()

        def headers() -> dict[str, str]:
            # Signed at each attempt: the signature carries the time it was made.
            return {
                "Content-Type": "application/json",
                SMSFLOW_SIGNATURE_HEADER: smsflow_signature(self._secret, body),
            }

        return await self._post(url, body, headers, attempts)

    async def post_twilio_form(
        self,
        url: str,
        params: Mapping[str, str],
        idempotency_token: str | None = None,
        attempts: int | None = None,
    ) -> int:
        """POST a form signed the way Twilio signs its webhooks."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: twilio_signature(self._token, url, params),
        }
        if idempotency_token is not None:
            headers[TWILIO_IDEMPOTENCY_HEADER] = idempotency_token
        return await self._post(url, urlencode(params).encode(), lambda: headers, attempts)

    async def _post(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], Mapping[str, str]],
        attempts: int | None,
    ) -> int:
        attempts = max(attempts or self._attempts, 1)
        # Connection-level failures are retried, and so are 503 and 429, which ask for it
        # (after ``Retry-After``, within the backoff cap). Any other answer, even a 500,
        # means the receiver saw the request, and repeating it is the receiver's call.
        for attempt in range(attempts):
            pause = min(self._max_backoff_s, self._backoff_s * 2**attempt)
            try:
                async with self._session.post(url, data=body, headers=headers()) as response:
                    await response.read()
                    if response.status not in RETRY_LATER or attempt + 1 == attempts:
                        return response.status
                    pause = min(self._max_backoff_s, _seconds(response.headers, pause))
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                if attempt + 1 == attempts:
                    raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")


def _seconds(headers: Mapping[str, str], default: float) -> float:
    """``Retry-After`` in seconds (the date form is not used by our receivers)."""
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except ValueError:
        return default
