"""Fields every event on every topic carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# Ids appear inside Kafka keys joined by ":", so they may not contain one.
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^:\s]+$")]
# The one home of the E.164 number pattern.
E164_PATTERN = r"^\+[1-9]\d{6,14}$"
E164 = Annotated[str, StringConstraints(pattern=E164_PATTERN)]


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Envelope: ``event_id`` is unique per emission, never a business key."""

    # Unknown fields are ignored so producers can add fields without breaking consumers.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    event_id: str = Field(default_factory=new_event_id, min_length=1)
    event_type: str
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)


def contact_key(account_id: str, contact_id: str) -> str:
    """The Kafka key of every contact-scoped topic."""
    return f"{account_id}:{contact_id}"
