from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.sms import SmsStatus, SmsStatusEvent
from services.control.status_table import COLUMNS, LatestStatuses, render, render_row, sms_key

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def status(
    contact: str, status: SmsStatus, key: str | None = "k1", **fields: object
) -> SmsStatusEvent:
    values: dict[str, object] = {
        "idempotency_key": key,
        "account_id": "acme",
        "contact_id": contact,
        "workflow_id": "welcome-flow",
        "message_id": "welcome",
        "status": status,
        "occurred_at": T0,
    }
    values.update(fields)
    return SmsStatusEvent.model_validate(values)


def test_latest_status_per_sms_keeps_number_and_segments_from_earlier_events() -> None:
    latest = LatestStatuses().extend(
        [
            status("1", SmsStatus.QUEUED, to_masked="+35840*****67", segments=2),
            status("2", SmsStatus.SKIPPED, key=None, reason="no_phone_number"),
            status("1", SmsStatus.SENT, provider_message_id="p1"),
            status("1", SmsStatus.DELIVERED, occurred_at=T0 + timedelta(seconds=3)),
        ]
    )
    rows = latest.rows()  # oldest change first
    assert [(r.contact_id, r.status) for r in rows] == [
        ("2", SmsStatus.SKIPPED),
        ("1", SmsStatus.DELIVERED),
    ]
    assert (rows[1].to_masked, rows[1].segments) == ("+35840*****67", 2)


def test_without_an_idempotency_key_an_sms_is_contact_workflow_message() -> None:
    a = status("7", SmsStatus.DEFERRED, key=None)
    b = status("7", SmsStatus.SKIPPED, key=None, message_id="other")
    assert sms_key(a) == "acme:7|welcome-flow|welcome"
    assert sms_key(a) != sms_key(b)
    assert len(LatestStatuses().extend([a, b, a]).rows()) == 2


def test_table_has_every_column_and_aligns_rows() -> None:
    text = render(
        [
            status("1001", SmsStatus.DELIVERED, to_masked="+35840*****67", segments=1),
            status(
                "1004", SmsStatus.SKIPPED, key="k2", reason="invalid_phone_number", workflow_id="w"
            ),
            status(
                "1009",
                SmsStatus.DEFERRED,
                key="k3",
                reason="quiet_hours",
                deferred_until=T0 + timedelta(hours=10),
            ),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split("  ")[0] == "contact"
    for column in COLUMNS:
        assert column in lines[0]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert "acme:1001" in lines[2]
    assert "delivered" in lines[2]
    assert "+35840*****67" in lines[2]
    assert "invalid_phone_number" in lines[3]
    assert "quiet_hours until 2026-11-27 20:00Z" in lines[4]
    status_at = lines[0].index("status")
    assert all(
        line[status_at:].startswith(("delivered", "skipped", "deferred")) for line in lines[2:]
    )


def test_no_statuses_and_follow_rows() -> None:
    assert render([]) == "no SMS statuses yet"
    row = render_row(status("1", SmsStatus.FAILED, error_code="21211", reason="rejected"))
    assert "failed" in row
    assert "rejected (21211)" in row


def test_an_opted_out_number_and_a_consent_deferral_show_their_reasons() -> None:
    until = T0 + timedelta(seconds=30)
    text = render(
        [
            status("1", SmsStatus.SKIPPED, reason="opted_out", to_masked="+35840*****67"),
            status(
                "2", SmsStatus.DEFERRED, key="k2", reason="consent_pending", deferred_until=until
            ),
        ]
    )
    rows = text.splitlines()[2:]  # after the header and its rule
    assert "skipped" in rows[0]
    assert "opted_out" in rows[0]
    assert "consent_pending until 2026-11-27 10:00Z" in rows[1]
