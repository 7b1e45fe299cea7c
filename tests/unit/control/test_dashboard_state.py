"""The dashboard's folded state: each SMS counted once in its current status, reasons as
they come, masked numbers, and a fold fast enough for thousands of events a second."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import SmsStatus, SmsStatusEvent
from services.control.dashboard.state import LATEST, DashboardState

NOW = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)


def status(
    key: str, state: SmsStatus, reason: str | None = None, **fields: object
) -> SmsStatusEvent:
    values: dict[str, object] = {
        "idempotency_key": key,
        "account_id": "acme",
        "contact_id": key,
        "workflow_id": "welcome-flow",
        "status": state,
        "reason": reason,
        "to_masked": "+35840*****67",
        "occurred_at": NOW,
    }
    values.update(fields)
    return SmsStatusEvent.model_validate(values)


def row(state: DashboardState, workflow: str = "welcome-flow") -> dict[str, object]:
    (found,) = [r for r in state.snapshot(NOW)["rows"] if r["workflow_id"] == workflow]
    return found


def test_an_sms_moves_between_columns() -> None:
    state = DashboardState()
    for step in (SmsStatus.QUEUED, SmsStatus.SENT):
        state.add_status(status("a", step))
    assert (row(state)["queued"], row(state)["sent"]) == (0, 1)
    # A delivery callback may not name the workflow: the SMS stays in its row.
    state.add_status(status("a", SmsStatus.DELIVERED, workflow_id=None))
    assert (row(state)["sent"], row(state)["delivered"]) == (0, 1)
    # A replay repeating 'sent' after the end does not move it back.
    state.add_status(status("a", SmsStatus.SENT))
    assert (row(state)["sent"], row(state)["delivered"]) == (0, 1)


def test_skips_by_reason_including_new_ones() -> None:
    state = DashboardState()
    state.add_status(status("a", SmsStatus.SKIPPED, "opted_out"))
    state.add_status(status("b", SmsStatus.SKIPPED, "frequency_capped"))
    state.add_status(status("c", SmsStatus.SKIPPED, "a_reason_added_later"))
    state.add_status(status("d", SmsStatus.DEFERRED, "sending_window"))
    found = row(state)
    assert found["skipped"] == 3
    assert found["deferred"] == 1
    assert found["skipped_by_reason"] == {
        "opted_out": 1,
        "frequency_capped": 1,
        "a_reason_added_later": 1,
    }


def test_enrollments_dead_letters_and_per_minute() -> None:
    state = DashboardState(prefix="smsflow.")
    for decision in (
        EnrollmentDecision.ENROLLED,
        EnrollmentDecision.REENROLLED,
        EnrollmentDecision.NOT_ENROLLED,
    ):
        state.add_enrollment(
            EnrollmentEvent(
                account_id="acme", contact_id="1", workflow_id="vip-flow", decision=decision
            )
        )
    assert row(state, "vip-flow")["enrolled"] == 2
    state.add_dead_letter(
        DeadLetter(
            service="enroller",
            topic="smsflow.contact-changes",
            partition=0,
            offset=1,
            reason="r",
            error_type="E",
        )
    )
    state.add_status(status("a", SmsStatus.SENT))
    state.add_status(status("b", SmsStatus.SENT))
    snapshot = state.snapshot(NOW)
    assert snapshot["dead_letters"] == {"enroller contact-changes": 1}
    assert snapshot["per_minute"]["sent"][-1] == 2
    assert len(snapshot["per_minute"]["minutes"]) == 60


def test_numbers_are_masked_even_when_a_producer_forgot() -> None:
    state = DashboardState()
    state.add_status(status("a", SmsStatus.SKIPPED, "opted_out", to_masked="+358401234567"))
    state.add_status(status("b", SmsStatus.SENT))
    text = json.dumps(state.snapshot(NOW))
    assert "+358401234567" not in text
    assert "+35840*****67" in text  # already masked ones stay as they are


def test_folds_far_faster_than_a_thousand_events_a_second() -> None:
    events = [
        status(f"k{i % 5000}", (SmsStatus.QUEUED, SmsStatus.SENT, SmsStatus.DELIVERED)[i % 3])
        for i in range(30_000)
    ]
    state = DashboardState()
    began = time.perf_counter()
    for event in events:
        state.add_status(event)
    rate = len(events) / (time.perf_counter() - began)
    assert rate > 10_000, f"{rate:.0f} events/s"
    snapshot = state.snapshot(NOW)
    assert len(snapshot["latest"]) == LATEST  # the page's payload does not grow with traffic
    counted = row(state)
    assert sum(counted[s.value] for s in SmsStatus) == 5000  # each SMS once
