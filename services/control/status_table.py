"""The latest status of each SMS, and the table people read (pure: no Kafka here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.sms import SmsStatusEvent

COLUMNS = (
    "contact",
    "workflow",
    "message",
    "status",
    "reason",
    "to",
    "segments",
    "updated at",
)


def sms_key(event: SmsStatusEvent) -> str:
    """One SMS: its idempotency key, else (contact, workflow, message)."""
    if event.idempotency_key:
        return event.idempotency_key
    return f"{event.account_id}:{event.contact_id}|{event.workflow_id}|{event.message_id}"


@dataclass
class LatestStatuses:
    """Feed events in topic order; keeps the latest event per SMS."""

    latest: dict[str, SmsStatusEvent] = field(default_factory=dict)

    def add(self, event: SmsStatusEvent) -> SmsStatusEvent:
        key = sms_key(event)
        known = self.latest.get(key)
        # A later event may omit what an earlier one said (a delivery callback knows
        # neither the number nor the segments): keep those.
        if known is not None:
            kept = {
                name: getattr(known, name)
                for name in ("to_masked", "segments", "workflow_id", "message_id")
                if getattr(event, name) is None and getattr(known, name) is not None
            }
            if kept:
                event = event.model_copy(update=kept)
        self.latest[key] = event
        return event

    def extend(self, events: Iterable[SmsStatusEvent]) -> LatestStatuses:
        for event in events:
            self.add(event)
        return self

    def rows(self) -> list[SmsStatusEvent]:
        """Oldest change first (partitions are read in no particular order)."""
        return sorted(self.latest.values(), key=lambda e: e.occurred_at)


def row(event: SmsStatusEvent) -> tuple[str, ...]:
    reason = event.reason or ""
    if event.deferred_until is not None:
        reason = f"{reason} until {event.deferred_until:%Y-%m-%d %H:%M}Z".strip()
    elif event.error_code:
        reason = f"{reason} ({event.error_code})".strip()
    return (
        f"{event.account_id}:{event.contact_id}",
        event.workflow_id or "",
        event.message_id or "",
        event.status.value,
        reason,
        event.to_masked or "",
        "" if event.segments is None else str(event.segments),
        f"{event.occurred_at:%Y-%m-%d %H:%M:%S}",
    )


def render(events: Iterable[SmsStatusEvent]) -> str:
    rows = [row(event) for event in events]
    if not rows:
        return "no SMS statuses yet"
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = [_line(COLUMNS, widths), _line(tuple("-" * w for w in widths), widths)]
    lines += [_line(r, widths) for r in rows]
    return "\n".join(lines)


# Column widths while following: rows are printed as they come, so widths are fixed.
FOLLOW_WIDTHS = [18, 18, 16, 11, 24, 16, 8, 19]


def render_row(event: SmsStatusEvent, widths: list[int] = FOLLOW_WIDTHS) -> str:
    return _line(row(event), widths)


def header(widths: list[int] = FOLLOW_WIDTHS) -> str:
    return _line(COLUMNS, widths)


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
