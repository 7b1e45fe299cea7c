"""Send-request checks and the provider's error shapes (Twilio's error codes)."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from schemas.envelope import E164_PATTERN

MAX_BODY_CHARS = 1600
E164_NUMBER = re.compile(E164_PATTERN)


@dataclass(frozen=True)
class ApiError:
    status: int
    code: int  # Twilio's error code where one exists, else the HTTP status
    error: str  # stable machine-readable name, for the generic API
    message: str

    def twilio_body(self) -> dict[str, Any]:
        more_info = f"https://www.twilio.com/docs/errors/{self.code}" if self.code > 999 else None
        return {
            "code": self.code,
            "message": self.message,
            "more_info": more_info,
            "status": self.status,
        }

    def generic_body(self) -> dict[str, Any]:
        return {"error": self.error, **self.twilio_body()}


INTERNAL_ERROR = ApiError(500, 20500, "internal_error", "An internal server error has occurred")
UNAVAILABLE = ApiError(503, 20503, "service_unavailable", "Service temporarily unavailable")
TOO_MANY_REQUESTS = ApiError(429, 20429, "too_many_requests", "Too Many Requests")
UNSUBSCRIBED = ApiError(
    400, 21610, "unsubscribed_recipient", "Attempt to send to unsubscribed recipient"
)


def check_message(
    to: object,
    from_: object,
    body: object,
    status_callback: object,
    opted_out: Container[str],
) -> ApiError | None:
    """The first problem with a send request, in the order Twilio reports them."""
    if not isinstance(to, str) or not to:
        return ApiError(400, 21604, "to_missing", "A 'To' phone number is required.")
    if not isinstance(from_, str) or not from_:
        return ApiError(400, 21603, "from_missing", "A 'From' phone number is required.")
    if not isinstance(body, str) or not body:
        return ApiError(400, 21602, "body_missing", "Message body is required.")
    if E164_NUMBER.fullmatch(to) is None:
        return ApiError(
            400, 21211, "invalid_to_number", f"The 'To' number {to} is not a valid phone number."
        )
    if len(body) > MAX_BODY_CHARS:
        return ApiError(
            400,
            21617,
            "body_too_long",
            f"The concatenated message body exceeds the {MAX_BODY_CHARS} character limit.",
        )
    if status_callback is not None and not _is_http_url(status_callback):
        return ApiError(400, 21609, "invalid_status_callback", "Invalid StatusCallback URL.")
    if to in opted_out:
        return UNSUBSCRIBED
    return None


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 4000:  # Twilio's StatusCallback limit
        return False
    return value.startswith(("http://", "https://"))
