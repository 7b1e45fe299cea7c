"""Building dead-letter records for anything a service cannot handle."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Literal

from schemas.dead_letters import DeadLetter

# Set by ``smsflow dead-letters replay`` on every record it re-publishes.
REPLAYED_FROM_HEADER = "smsflow-replayed-from"

# kafka-python and aiokafka give a list of (name, bytes) pairs; faust may give a mapping.
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
    try:
        text = None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(value or b"").decode(), "base64"
    return DeadLetter(
        service=service,
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key.decode("utf-8", errors="replace"),
        reason=reason,
        error_type=type(error).__name__ if error else "DecodeError",
        value=text,
        value_encoding=encoding,
        replayed_from=header_value(headers, REPLAYED_FROM_HEADER),
    )
