"""Building dead-letter records for anything a service cannot handle."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from schemas.dead_letters import DeadLetter

# Set by ``smsflow dead-letters replay`` on every record it re-publishes.
REPLAYED_FROM_HEADER = "smsflow-replayed-from"

# kafka-python and aiokafka give a list of (name, bytes) pairs; a mapping is taken too.
Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


def header_value(headers: Headers, name: str) -> str | None:
    """One header's value as text (the last one wins), or None."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: str | None = None
    for key, raw in pairs:
        if key == name and raw is not None:
            found = raw.decode("utf-8", errors="replace")
    return found


# The start of the original value kept in a dead letter: even escaped six times over in
# JSON it stays under the broker's default 1 MiB message limit.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_CHARS = 1024
MAX_REASON_CHARS = 2000


def dead_letter(
    *,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    error: BaseException | None = None,
    headers: Headers = None,
) -> DeadLetter:
    """``headers`` are the failed record's: a replayed record that fails again keeps its
    provenance, so the new dead letter is marked as a repeat."""
    text: str | None
    encoding: Literal["utf-8", "base64"] = "utf-8"
    kept = None if value is None else value[:MAX_VALUE_BYTES]
    truncated = value is not None and len(value) > MAX_VALUE_BYTES
    try:
        text = None if kept is None else _utf8_prefix(kept, truncated)
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept or b"").decode(), "base64"
    return DeadLetter(
        service=service,
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key[:MAX_KEY_CHARS].decode("utf-8", errors="replace"),
        reason=reason[:MAX_REASON_CHARS],
        error_type=type(error).__name__ if error else "DecodeError",
        value=text,
        value_encoding=encoding,
        replayed_from=header_value(headers, REPLAYED_FROM_HEADER),
        value_truncated=truncated,
        value_size=None if value is None else len(value),
    )


class ConsumedRecord(Protocol):
    """What a consumed record has (aiokafka's and kafka-python's ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: Any


def dead_letter_of(
    service: str, record: ConsumedRecord, reason: str, error: BaseException | None = None
) -> DeadLetter:
    """The dead letter of a consumed record that cannot be handled."""
    return dead_letter(
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
        error=error,
        headers=record.headers,
    )


def _utf8_prefix(data: bytes, cut: bool) -> str:
    """``data`` as UTF-8; when it was cut, a character split at the end is dropped."""
    if cut:
        for drop in range(4):  # a UTF-8 character is at most 4 bytes
            try:
                return data[: len(data) - drop].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return data.decode("utf-8")
