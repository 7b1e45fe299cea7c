"""Building dead-letter records for anything a service cannot handle."""

from __future__ import annotations

import base64
from typing import Literal

from schemas.dead_letters import DeadLetter


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
) -> DeadLetter:
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
    )
