"""What the simulator accepted and received, for tests to check (``GET /_sim/...``).

The ledger is the place for phone numbers and bodies; logs never carry them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from .clock import rfc3339_from_timestamp

Api = Literal["http", "twilio"]

# Bounded so a long demo under load cannot grow without limit; tests reset often.
MAX_REQUESTS = 200_000


@dataclass(slots=True)
class MessageRecord:
    id: str
    api: Api
    to: str
    from_: str
    body: str
    idempotency_key: str | None
    received_at: float  # epoch seconds; formatted only when read, off the hot path
    status: str
    segments: int
    encoding: str
    status_callback: str | None = None
    account_sid: str | None = None
    error_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "idempotency_key": self.idempotency_key,
            "received_at": rfc3339_from_timestamp(self.received_at),
            "api": self.api,
            "status": self.status,
            "error_code": self.error_code,
            "segments": self.segments,
            "encoding": self.encoding,
            "status_callback": self.status_callback,
        }


@dataclass(slots=True)
class RequestRecord:
    method: str
    path: str
    idempotency_key: str | None
    received_at: float  # epoch seconds
    status: int | None = None  # None until answered (or if the client went away first)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "received_at": rfc3339_from_timestamp(self.received_at),
        }


class Ledger:
    def __init__(self, max_requests: int = MAX_REQUESTS) -> None:
        self._messages: dict[str, MessageRecord] = {}
        self._requests: deque[RequestRecord] = deque(maxlen=max_requests)

    def add_message(self, record: MessageRecord) -> None:
        self._messages[record.id] = record

    def set_status(self, message_id: str, status: str, error_code: int | None = None) -> None:
        record = self._messages.get(message_id)
        if record is not None:  # may have been cleared by a reset meanwhile
            record.status = status
            record.error_code = error_code

    def record_request(
        self, method: str, path: str, idempotency_key: str | None, received_at: float
    ) -> RequestRecord:
        record = RequestRecord(method, path, idempotency_key, received_at)
        self._requests.append(record)
        return record

    def messages(self) -> list[MessageRecord]:
        return list(self._messages.values())

    def requests(self) -> list[RequestRecord]:
        return list(self._requests)

    def clear(self) -> None:
        self._messages.clear()
        self._requests.clear()
