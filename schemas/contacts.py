"""What upstream systems publish to ``contact-changes``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.envelope import Event, Id, contact_key

PropertyValue = str | int | float | bool | None


class ContactChange(Event):
    """A partial update: listed properties are set, ``None`` clears, others keep their value."""

    event_type: Literal["contact.changed"] = "contact.changed"
    account_id: Id
    contact_id: Id
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    deleted: bool = False
    # Added to the contract: who wrote the change ("upstream", or "workflow:<id>").
    source: str = "upstream"

    @property
    def key(self) -> str:
        return contact_key(self.account_id, self.contact_id)
