"""What the enroller remembers per contact, and its compact changelog encoding.

One record per contact key holds the contact's properties, the ids of its latest changes
(for de-duplication), its active enrollments and how many times it was enrolled in each
workflow. Everything about one contact therefore changes in one table write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schemas.contacts import PropertyValue


class Status(StrEnum):
    AWAITING = "awaiting"  # a command is out; waiting for its result
    DELAYED = "delayed"  # inside a delay action until ``due``
    DEFERRED = "deferred"  # the runner deferred the command (quiet hours) until ``due``


@dataclass(slots=True)
class Enrollment:
    sequence: int  # the n-th enrollment of this contact in this workflow (1-based)
    step: int  # index of the current action
    status: Status
    attempt: int = 1
    due: float | None = None  # epoch seconds, for DELAYED and DEFERRED


@dataclass(slots=True)
class ContactState:
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # latest change ids, oldest first
    deleted: bool = False
    enrollments: dict[str, Enrollment] = field(default_factory=dict)  # active, by workflow
    sequences: dict[str, int] = field(default_factory=dict)  # enrollments so far, by workflow

    @property
    def exists(self) -> bool:
        return not self.deleted and bool(self.properties or self.enrollments or self.seen)

    def next_due(self) -> float | None:
        dues = [e.due for e in self.enrollments.values() if e.due is not None]
        return min(dues) if dues else None

    def remember(self, event_id: str, window: int) -> bool:
        """Record a change id; False when it was seen already (a redelivery)."""
        short = event_id[:32]
        if short in self.seen:
            return False
        self.seen.append(short)
        if len(self.seen) > window:
            del self.seen[: len(self.seen) - window]
        return True


# ---------------------------------------------------------------- encoding


def encode_state(state: ContactState) -> bytes:
    record: dict[str, Any] = {"p": state.properties, "s": state.seen}
    if state.deleted:
        record["x"] = 1
    if state.enrollments:
        record["e"] = {
            workflow: [e.sequence, e.step, e.status.value, e.attempt, e.due]
            for workflow, e in state.enrollments.items()
        }
    if state.sequences:
        record["n"] = state.sequences
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def decode_state(raw: bytes | None) -> ContactState | None:
    if raw is None:
        return None
    record = json.loads(raw)
    return ContactState(
        properties=record.get("p", {}),
        seen=record.get("s", []),
        deleted=bool(record.get("x")),
        enrollments={
            workflow: Enrollment(seq, step, Status(status), attempt, due)
            for workflow, (seq, step, status, attempt, due) in record.get("e", {}).items()
        },
        sequences=record.get("n", {}),
    )


def split_key(key: str) -> tuple[str, str]:
    """``account:contact`` -> (account, contact); raises ValueError when malformed."""
    account_id, sep, contact_id = key.partition(":")
    if not sep or not account_id or not contact_id or ":" in contact_id:
        raise ValueError(f"malformed contact key {key!r}")
    return account_id, contact_id
