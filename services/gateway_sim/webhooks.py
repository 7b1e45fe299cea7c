"""Signed POSTs to the sender's webhooks, retried on connection errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .signatures import (
    SMSFLOW_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_HEADER,
    smsflow_signature,
    twilio_signature,
)

TWILIO_IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


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
        backoff_s: float = 0.1,
    ) -> None:
        self._session = session
        self._secret = webhook_secret
        self._token = twilio_auth_token
        self._attempts = max(attempts, 1)
        self._backoff_s = backoff_s

    async def post_json(self, url: str, payload: Mapping[str, Any]) -> int:
        """POST JSON signed with ``X-Smsflow-Signature``; returns the response status."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SMSFLOW_SIGNATURE_HEADER: smsflow_signature(self._secret, body),
        }
        return await self._post(url, body, headers)

    async def post_twilio_form(
        self, url: str, params: Mapping[str, str], idempotency_token: str | None = None
    ) -> int:
        """POST a form signed the way Twilio signs its webhooks."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: twilio_signature(self._token, url, params),
        }
        if idempotency_token is not None:
            headers[TWILIO_IDEMPOTENCY_HEADER] = idempotency_token
        return await self._post(url, urlencode(params).encode(), headers)

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        # Only connection-level failures are retried: an HTTP answer, even 5xx, means
        # the receiver saw the request, and repeating it is the receiver's call.
        for attempt in range(self._attempts):
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    return response.status
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                if attempt + 1 == self._attempts:
                    raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(self._backoff_s * 3**attempt)
        raise AssertionError("unreachable")
