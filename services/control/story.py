"""The demo's script: contacts to publish, replies to send, and the outcome expected.

Pure: loads the file and judges progress from the latest SMS statuses it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.contacts import PropertyValue
from schemas.definitions import SendingWindow
from schemas.sms import DEFERRED_SENDING_WINDOW, FINAL_STATUSES, SmsStatus, SmsStatusEvent
from services.enroller.local_time import is_open

SETTLED = FINAL_STATUSES | {SmsStatus.DEFERRED}  # deferred waits for hours: the demo moves on
REPLY_AFTER = frozenset({SmsStatus.SENT, SmsStatus.DELIVERED})


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workflow: str
    status: SmsStatus
    reason: str | None = None
    # Also met by a deferral for this reason (e.g. a sending window closed at demo time).
    or_deferred: str | None = None

    def met_by(self, event: SmsStatusEvent | None, held: bool = False) -> bool:
        """``held``: the workflow's sending window was closed for the contact when it was
        published, so its first action waits too and no SMS status may exist yet."""
        if event is None:
            return held
        if self.or_deferred is not None and event.status is SmsStatus.DEFERRED:
            return event.reason == self.or_deferred
        return event.status is self.status and (self.reason is None or event.reason == self.reason)


class StoryContact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    story: str = ""
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    expect: tuple[Expectation, ...] = ()
    reply: str | None = None
    then: dict[str, PropertyValue] | None = None


class Story(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    account: str
    contacts: tuple[StoryContact, ...]


def held_by_windows(
    story: Story, windows: Mapping[str, SendingWindow], now: datetime
) -> set[tuple[str, str]]:
    """(contact, workflow) pairs whose workflow's sending window is closed at ``now`` in the
    contact's ``hs_timezone``: their first action waits for it, so no SMS status may come."""
    held = set()
    for contact in story.contacts:
        zone = contact.properties.get("hs_timezone")
        for expectation in contact.expect:
            window = windows.get(expectation.workflow)
            if expectation.or_deferred != DEFERRED_SENDING_WINDOW or window is None or not zone:
                continue
            if not is_open(now, ZoneInfo(str(zone)), window):
                held.add((contact.id, expectation.workflow))
    return held


def load_story(path: Path) -> Story:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Story.model_validate(data)


Latest = Mapping[tuple[str, str], SmsStatusEvent]  # (contact id, workflow id) -> latest


def index_latest(events: list[SmsStatusEvent]) -> dict[tuple[str, str], SmsStatusEvent]:
    return {(e.contact_id, e.workflow_id or ""): e for e in events}


@dataclass
class Progress:
    """Where the story stands; ``replied``/``followed_up`` are updated by the runner."""

    story: Story
    replied: set[str] = field(default_factory=set)
    followed_up: set[str] = field(default_factory=set)
    # (contact id, workflow id) held by a sending window closed at publish time.
    held: set[tuple[str, str]] = field(default_factory=set)

    def observed(self, contact: StoryContact, latest: Latest) -> list[SmsStatusEvent | None]:
        return [latest.get((contact.id, e.workflow)) for e in contact.expect]

    def settled(self, contact: StoryContact, latest: Latest) -> bool:
        if contact.reply and contact.id not in self.followed_up:
            return False
        return all(
            self.is_held(contact, expectation) if event is None else event.status in SETTLED
            for expectation, event in zip(
                contact.expect, self.observed(contact, latest), strict=True
            )
        )

    def is_held(self, contact: StoryContact, expectation: Expectation) -> bool:
        return expectation.or_deferred is not None and (contact.id, expectation.workflow) in (
            self.held
        )

    def reply_due(self, contact: StoryContact, latest: Latest) -> bool:
        """The contact replies once the first SMS expected for them has arrived."""
        if not contact.reply or contact.id in self.replied or not contact.expect:
            return False
        first = latest.get((contact.id, contact.expect[0].workflow))
        return first is not None and first.status in REPLY_AFTER

    def summary(self, latest: Latest) -> str:
        contacts = self.story.contacts
        done = sum(self.settled(c, latest) for c in contacts)
        parts = [f"waiting for {len(contacts)} contacts: {done} settled"]
        if self.replied:
            parts.append(f"{len(self.replied)} replied")
        return ", ".join(parts)

    def verdicts(self, latest: Latest) -> list[tuple[StoryContact, Expectation, bool]]:
        return [
            (contact, expectation, expectation.met_by(event, self.is_held(contact, expectation)))
            for contact in self.story.contacts
            for expectation, event in zip(
                contact.expect, self.observed(contact, latest), strict=True
            )
        ]
