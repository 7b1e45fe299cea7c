"""Twilio's Messages API: form fields To/From/Body/StatusCallback, Basic auth with the
account SID and auth token, errors as ``{code, message, more_info, status}``.

Twilio does not de-duplicate: an ambiguous send is never repeated. The key
still travels as a header (ignored by Twilio) and in the StatusCallback URL (``?ik=``), so
a callback names the key even when the create call's answer never arrived.
"""

from __future__ import annotations

import base64

import aiohttp

from schemas.sms import SmsRequest
from services.sms_sender.gateway import Accepted, Ambiguous, SendOutcome
from services.sms_sender.http_client import Response, classify_failure, post


class TwilioGateway:
    api = "twilio"
    dedupes = False

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, session: aiohttp.ClientSession
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {credentials}"}
        self.session = session

    async def send(self, request: SmsRequest, status_callback: str) -> SendOutcome:
        answer = await post(
            self.session,
            self.url,
            data={
                "To": request.to,
                "From": request.from_,
                "Body": request.body,
                "StatusCallback": status_callback,
            },
            headers={**self.headers, "Idempotency-Key": request.idempotency_key},
        )
        return answer if not isinstance(answer, Response) else outcome_of(answer)

    async def close(self) -> None:
        await self.session.close()


def outcome_of(response: Response) -> SendOutcome:
    if 200 <= response.status < 300:
        payload = response.json()
        sid = payload.get("sid")
        if not isinstance(sid, str) or not sid:
            return Ambiguous("accepted_without_sid")
        segments = payload.get("num_segments")
        count = int(segments) if isinstance(segments, str) and segments.isdigit() else None
        return Accepted(sid, count or None)
    return classify_failure(response)
