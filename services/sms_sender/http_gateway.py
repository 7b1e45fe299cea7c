"""The generic JSON API (``POST /v1/messages``), with the key as ``Idempotency-Key``: a
resend of the same key gets the first answer back, so an ambiguous send may be repeated.
"""

from __future__ import annotations

import aiohttp

from schemas.sms import SmsRequest
from services.sms_sender.gateway import Accepted, Ambiguous, SendOutcome
from services.sms_sender.http_client import Response, classify_failure, post


class HttpGateway:
    api = "http"
    dedupes = True

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.session = session

    async def send(self, request: SmsRequest, status_callback: str) -> SendOutcome:
        answer = await post(
            self.session,
            self.url,
            json={
                "to": request.to,
                "from": request.from_,
                "body": request.body,
                "status_callback": status_callback,
            },
            headers={"Idempotency-Key": request.idempotency_key},
        )
        return answer if not isinstance(answer, Response) else outcome_of(answer)

    async def close(self) -> None:
        await self.session.close()


def outcome_of(response: Response) -> SendOutcome:
    if 200 <= response.status < 300:
        payload = response.json()
        provider_id = payload.get("id")
        if not isinstance(provider_id, str) or not provider_id:
            return Ambiguous("accepted_without_id")
        segments = payload.get("segments")
        return Accepted(provider_id, segments if isinstance(segments, int) else None)
    return classify_failure(response)
