"""Decoding what the agent reads: a contact change or an action result.

Records are decoded by their ``event_type`` (pydantic stays the one schema system); a record
on a known topic must carry that topic's type, so a result written to ``contact-changes`` is
rejected with a reason instead of being applied.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel

from schemas.actions import ActionResult
from schemas.contacts import ContactChange
from services.common.codec import DecodeError, decode

from .engine import InvalidRecord

Record = ContactChange | ActionResult


class Inbound(RootModel[Annotated[Record, Field(discriminator="event_type")]]):
    pass


def decode_inbound(topic: str, value: bytes | None, expected: dict[str, str]) -> Record:
    """``expected`` maps topic names to the event type they carry."""
    record = decode(Inbound, value).root
    wanted = expected.get(topic)
    if wanted is not None and record.event_type != wanted:
        raise InvalidRecord(f"event_type {record.event_type!r} does not belong on {topic}")
    return record


__all__ = ["DecodeError", "Inbound", "Record", "decode_inbound"]
