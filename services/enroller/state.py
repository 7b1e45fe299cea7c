"""What the enroller remembers per contact, and its compact changelog encoding.

One record per contact key holds the contact's properties, when each was last written
(the change's ``occurred_at``: an older change never overwrites a newer value), the ids of
its latest changes (for de-duplication), its active enrollments and how many times it was
enrolled in each workflow. Everything about one contact therefore changes in one table
write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pydantic_core

from schemas.contacts import PropertyValue


class Status(StrEnum):
    AWAITING = "awaiting"  # a command is out; waiting for its result
    DELAYED = "delayed"  # inside a delay action until ``due``
    DEFERRED = "deferred"  # the runner deferred the command (quiet hours) until ``due``


@dataclass(slots=True)
class Enrollment:
    sequence: int  # the n-th enrollment of this contact in this workflow (1-based)
    # The stable id of the current action (an int position in records written before
    # actions had ids; the engine reads it against the current revision).
    step: str | int
    status: Status
    attempt: int = 1
    due: float | None = None  # epoch seconds, for DELAYED and DEFERRED
    # Ids of the actions this enrollment has finished, in order: never run again, and
    # where it carries on when a revision removes its current action (see ``plan``).
    done: list[str] = field(default_factory=list)


class ContactState:
    """A contact's record. Enrollments are decoded only when a decision needs them, so a
    change that concerns no workflow costs a JSON round trip and little else."""

    __slots__ = (
        "_enrollments",
        "_raw_enrollments",
        "deleted",
        "floor",
        "properties",
        "seen",
        "sequences",
        "stamps",
    )

    def __init__(
        self,
        properties: dict[str, PropertyValue] | None = None,
        seen: list[str] | None = None,
        deleted: bool = False,
        enrollments: dict[str, Enrollment] | None = None,
        sequences: dict[str, int] | None = None,
        stamps: dict[str, int] | None = None,
        floor: int = 0,
    ) -> None:
        self.properties: dict[str, PropertyValue] = {} if properties is None else properties
        # Per property (cleared ones too): the occurred_at, in epoch microseconds, of the
        # change that last wrote it.
        self.stamps: dict[str, int] = {} if stamps is None else stamps
        # Changes at or before this moment (the latest deletion) are stale.
        self.floor = floor
        self.seen: list[str] = [] if seen is None else seen  # digests of change ids, oldest first
        self.deleted = deleted
        self.sequences: dict[str, int] = {} if sequences is None else sequences
        self._enrollments: dict[str, Enrollment] | None = {} if enrollments is None else enrollments
        self._raw_enrollments: dict[str, list[Any]] = {}

    @property
    def enrollments(self) -> dict[str, Enrollment]:
        """Active enrollments by workflow id."""
        if self._enrollments is None:
            self._enrollments = {
                workflow: _decode_enrollment(raw) for workflow, raw in self._raw_enrollments.items()
            }
        return self._enrollments

    def enrolled_in(self) -> Collection[str]:
        """Ids of the workflows with an active enrollment, without decoding them."""
        return self._raw_enrollments.keys() if self._enrollments is None else self._enrollments

    def awaiting(self) -> bool:
        """True when a command is out waiting for its result (without decoding enrollments)."""
        if self._enrollments is None:
            return any(raw[2] == Status.AWAITING.value for raw in self._raw_enrollments.values())
        return any(e.status is Status.AWAITING for e in self._enrollments.values())

    def next_due(self) -> float | None:
        if self._enrollments is None:
            dues = [raw[4] for raw in self._raw_enrollments.values() if raw[4] is not None]
        else:
            dues = [e.due for e in self._enrollments.values() if e.due is not None]
        return min(dues) if dues else None

    def remember(self, event_id: str, window: int) -> bool:
        """Record a change id; False when it was seen already (a redelivery)."""
        digest = change_digest(event_id)
        if digest in self.seen:
            return False
        self.seen.append(digest)
        if len(self.seen) > window:
            del self.seen[: len(self.seen) - window]
        return True

    def newest(self) -> int:
        """When the latest change that wrote anything here happened (epoch microseconds)."""
        return max(self.stamps.values(), default=self.floor)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContactState):
            return NotImplemented
        return (
            self.properties == other.properties
            and self.stamps == other.stamps
            and self.floor == other.floor
            and self.seen == other.seen
            and self.deleted == other.deleted
            and self.enrollments == other.enrollments
            and self.sequences == other.sequences
        )

    def __repr__(self) -> str:
        return (
            f"ContactState(properties={self.properties!r}, stamps={self.stamps!r}, "
            f"floor={self.floor!r}, seen={self.seen!r}, "
            f"deleted={self.deleted!r}, enrollments={self.enrollments!r}, "
            f"sequences={self.sequences!r})"
        )


def change_digest(event_id: str) -> str:
    """16 hex digits standing for a change id of any length (a fixed 8 bytes per entry)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


_STATUS = {status.value: status for status in Status}


# ---------------------------------------------------------------- encoding


def encode_state(state: ContactState) -> bytes:
    record: dict[str, Any] = {"p": state.properties, "s": state.seen}
    if state.stamps:
        record.update(_encode_stamps(state.properties, state.stamps))
    if state.floor:
        record["f"] = state.floor
    if state.deleted:
        record["x"] = 1
    if state._enrollments is None:
        if state._raw_enrollments:
            record["e"] = state._raw_enrollments
    elif state._enrollments:
        record["e"] = {
            workflow: [e.sequence, e.step, e.status.value, e.attempt, e.due, e.done]
            for workflow, e in state._enrollments.items()
        }
    if state.sequences:
        record["n"] = state.sequences
    # pydantic-core's JSON (already a dependency) is about three times faster than json's.
    return pydantic_core.to_json(record)


def _decode_enrollment(raw: list[Any]) -> Enrollment:
    sequence, step, status, attempt, due = raw[:5]
    done = raw[5] if len(raw) > 5 else []
    return Enrollment(sequence, step, _STATUS[status], attempt, due, done)


def _encode_stamps(properties: dict[str, Any], stamps: dict[str, int]) -> dict[str, Any]:
    """Compactly: the newest stamp, then each property's age relative to it, in the order of
    ``properties`` (mostly zeros: one change usually writes them all), and the stamps of
    cleared properties by name."""
    newest = max(stamps.values())
    ages = [None if (at := stamps.get(name)) is None else newest - at for name in properties]
    cleared = {name: newest - at for name, at in stamps.items() if name not in properties}
    encoded: dict[str, Any] = {"T": newest, "t": ages}
    if cleared:
        encoded["c"] = cleared
    return encoded


def _decode_stamps(record: dict[str, Any]) -> dict[str, int]:
    newest = record.get("T")
    if newest is None:
        return {}
    stamps = {
        name: newest - age
        for name, age in zip(record.get("p", {}), record.get("t", ()), strict=False)
        if age is not None
    }
    stamps.update((name, newest - age) for name, age in record.get("c", {}).items())
    return stamps


def decode_state(raw: bytes | None) -> ContactState | None:
    if raw is None:
        return None
    record = pydantic_core.from_json(raw)
    state = ContactState(
        properties=record.get("p", {}),
        seen=record.get("s", []),
        deleted=bool(record.get("x")),
        sequences=record.get("n", {}),
        stamps=_decode_stamps(record),
        floor=record.get("f", 0),
    )
    state._enrollments = None
    state._raw_enrollments = record.get("e", {})
    return state


def split_key(key: str) -> tuple[str, str]:
    """``account:contact`` -> (account, contact); raises ValueError when malformed."""
    account_id, sep, contact_id = key.partition(":")
    if not sep or not account_id or not contact_id or ":" in contact_id:
        raise ValueError(f"malformed contact key {key!r}")
    return account_id, contact_id
