"""What the dashboard shows, folded from the topics (pure: events in, a snapshot out).

Every update is O(1), so the feed keeps up with thousands of status events a second; the
page gets a snapshot at most every few hundred milliseconds, whatever the event rate.
Counts are of SMS (by idempotency key) in their current status: a status event moves one
SMS from its previous column to the next one. Reasons are read from the events as they
are, so a new skip reason gets its own column without a change here.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import FINAL_STATUSES, SmsStatus, SmsStatusEvent
from services.common.masking import mask_phone
from services.control.status_table import sms_key

ENROLLED = frozenset({EnrollmentDecision.ENROLLED, EnrollmentDecision.REENROLLED})
LATEST = 25  # latest status changes shown
MINUTES = 60  # of the SMS-per-minute series
SERIES = ("sent", "delivered", "failed", "skipped")


def masked(number: str | None) -> str | None:
    """Producers mask ``to_masked``; mask it here too should one ever not have."""
    if not number or "*" in number:
        return number
    return mask_phone(number)


@dataclass
class Row:
    """One account and workflow."""

    enrolled: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # by reason

    def as_dict(self) -> dict[str, Any]:
        counts = {s.value: self.statuses.get(s.value, 0) for s in SmsStatus}
        return {"enrolled": self.enrolled, **counts, "skipped_by_reason": dict(self.skipped)}


@dataclass
class DashboardState:
    prefix: str = ""
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    # per SMS: (row, status, reason) it is counted under now
    current: dict[str, tuple[tuple[str, str], str, str | None]] = field(default_factory=dict)
    latest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LATEST))
    per_minute: dict[int, Counter[str]] = field(default_factory=dict)  # epoch minute -> counts
    dead_letters: Counter[str] = field(default_factory=Counter)  # "service topic" -> count
    lag: dict[str, int] = field(default_factory=dict)  # consumer group -> records behind
    events: int = 0
    version: int = 0  # bumped by every change: the pusher sends only when it moved

    def row(self, account_id: str, workflow_id: str | None) -> Row:
        key = (account_id, workflow_id or "-")
        found = self.rows.get(key)
        if found is None:
            found = self.rows[key] = Row()
        return found

    def add_status(self, event: SmsStatusEvent) -> None:
        self._changed()
        key = sms_key(event)
        where = (event.account_id, event.workflow_id or "-")
        before = self.current.get(key)
        if before is not None:
            if SmsStatus(before[1]) in FINAL_STATUSES and event.status not in FINAL_STATUSES:
                return  # a replay repeating an earlier step: the SMS stays where it ended
            row = self.rows[before[0]]
            row.statuses[before[1]] -= 1
            if before[1] == SmsStatus.SKIPPED.value and before[2]:
                row.skipped[before[2]] -= 1
                if row.skipped[before[2]] <= 0:
                    del row.skipped[before[2]]
            where = before[0]  # a delivery callback may not name the workflow
        row = self.row(*where)
        row.statuses[event.status.value] += 1
        if event.status is SmsStatus.SKIPPED:
            row.skipped[event.reason or "unknown"] += 1
        self.current[key] = (where, event.status.value, event.reason)
        minute = int(event.occurred_at.timestamp() // 60)
        if event.status.value in SERIES:
            self.per_minute.setdefault(minute, Counter())[event.status.value] += 1
            if len(self.per_minute) > MINUTES * 2:
                for old in sorted(self.per_minute)[: len(self.per_minute) - MINUTES]:
                    del self.per_minute[old]
        self.latest.appendleft(
            {
                "at": event.occurred_at.isoformat(),
                "account_id": event.account_id,
                "contact_id": event.contact_id,
                "workflow_id": where[1],
                "status": event.status.value,
                "reason": event.reason,
                "to": masked(event.to_masked),
            }
        )

    def add_enrollment(self, event: EnrollmentEvent) -> None:
        if event.decision in ENROLLED:
            self._changed()
            self.row(event.account_id, event.workflow_id).enrolled += 1

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self._changed()
        topic = letter.topic.removeprefix(self.prefix)
        self.dead_letters[f"{letter.service} {topic}"] += 1

    def set_lag(self, lag: dict[str, int]) -> None:
        if lag != self.lag:
            self.lag = dict(lag)
            self.version += 1

    def _changed(self) -> None:
        self.events += 1
        self.version += 1

    def snapshot(self, now: datetime) -> dict[str, Any]:
        last = int(now.timestamp() // 60)
        minutes = range(last - MINUTES + 1, last + 1)
        return {
            "version": self.version,
            "events": self.events,
            "rows": [
                {"account_id": account, "workflow_id": workflow, **row.as_dict()}
                for (account, workflow), row in sorted(self.rows.items())
            ],
            "per_minute": {
                "minutes": [m * 60 for m in minutes],
                **{
                    name: [self.per_minute.get(m, Counter()).get(name, 0) for m in minutes]
                    for name in SERIES
                },
            },
            "latest": list(self.latest),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "dead_letters_total": sum(self.dead_letters.values()),
            "lag": dict(sorted(self.lag.items())),
        }
