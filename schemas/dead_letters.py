"""Records that could not be handled, with where they came from and why."""

from __future__ import annotations

from typing import Literal

from schemas.envelope import Event


class DeadLetter(Event):
    event_type: Literal["dead_letter"] = "dead_letter"
    service: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    reason: str
    error_type: str
    # The original value: UTF-8 text when it decodes, else base64 (``value_encoding``).
    value: str | None = None
    value_encoding: Literal["utf-8", "base64"] = "utf-8"
    # Set when ``value`` holds only the start of the original (it stays far below the
    # broker's message size limit); ``value_size`` is the original's size in bytes.
    value_truncated: bool = False
    value_size: int | None = None
    # The ``smsflow-replayed-from`` header of the failed record: it was itself a replay of
    # that dead letter, so this one is a repeat (replay leaves repeats alone: no loops).
    replayed_from: str | None = None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"
