"""What handling one record asks the edges to do: commands, decisions, log notes.

Every emitted event gets a deterministic ``event_id`` derived from what caused it, so a
record handled twice (at-least-once delivery, a restart) emits events with the same ids,
which consumers can de-duplicate; the business keys (``enrollment_id``, ``action_id``) never
depend on time or randomness either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from schemas.actions import ActionCommand, ActionResult
from schemas.enrollment import EnrollmentEvent
from schemas.sms import SmsStatusEvent


def derived_id(*parts: object) -> str:
    """32 hex digits (the size of a uuid4 hex), a digest of what caused the event."""
    text = "|".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16, person=b"smsflow-enroll").hexdigest()


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth one log field set that is not an event (an ignored result ...)."""

    event: str
    fields: dict[str, Any]


@dataclass(slots=True)
class Effects:
    commands: list[ActionCommand] = field(default_factory=list)
    events: list[EnrollmentEvent] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)  # branches taken
    statuses: list[SmsStatusEvent] = field(default_factory=list)  # SMS held by a window
    notes: list[Note] = field(default_factory=list)
    dirty: bool = False  # the contact's state changed and must be written
    sent: bool = False  # the commands and events are out (so a retried write sends none)

    def note(self, event: str, **fields: Any) -> None:
        self.notes.append(Note(event, fields))

    @property
    def empty(self) -> bool:
        return not (self.outputs or self.dirty)

    @property
    def outputs(self) -> bool:
        return bool(self.commands or self.events or self.results or self.statuses)
