"""Frequency caps: a rolling window per contact, across workflows, replays counted once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.actions import ActionOutcome
from schemas.definitions import FrequencyCap
from schemas.sms import SmsStatus, SmsStatusEvent
from services.action_runner.commands import handle_command
from services.action_runner.frequency import KEEP_DAYS, SentLog, SentSms, is_capped, record
from services.common.idempotency import sms_key
from tests.unit.action_runner.defs import NIGHT, NOON, SUBSCRIBED, Defs, account, command

CAP = FrequencyCap(max_messages=3, per_days=7)


def log_of(*days_ago: float) -> SentLog:
    log = None
    for index, days in enumerate(days_ago):
        log = record(log, f"sms-{index:08d}", NOON - timedelta(days=days), CAP)
    return log or SentLog()


@pytest.mark.parametrize(
    ("days_ago", "capped"),
    [
        ((), False),
        ((1, 2), False),
        ((1, 2, 3), True),
        ((6.9, 2, 3), True),
        ((7, 2, 3), False),  # exactly per_days ago: out of the rolling window
        ((30, 20, 10, 1), False),
    ],
)
def test_the_cap_counts_a_rolling_window(days_ago: tuple[float, ...], capped: bool) -> None:
    assert is_capped(log_of(*days_ago), CAP, "sms-new00000", NOON) is capped


def test_no_cap_never_caps() -> None:
    assert not is_capped(log_of(0, 0, 0, 0), None, "sms-new00000", NOON)


def test_a_key_already_counted_is_neither_counted_again_nor_refused() -> None:
    log = log_of(1, 2, 3)
    assert not is_capped(log, CAP, "sms-00000002", NOON)
    assert record(log, "sms-00000002", NOON, CAP) == log


def test_record_keeps_the_horizon_and_a_longer_cap() -> None:
    old = SentLog(
        sent=[
            SentSms(idempotency_key="sms-00000000", at=NOON - timedelta(days=KEEP_DAYS + 1)),
            SentSms(idempotency_key="sms-00000001", at=NOON - timedelta(days=1)),
        ]
    )
    assert [s.idempotency_key for s in record(old, "k-new-000", NOON, None).sent] == [
        "sms-00000001",
        "k-new-000",
    ]
    year = FrequencyCap(max_messages=10, per_days=365)
    assert len(record(old, "k-new-000", NOON, year).sent) == 3


def _defs_with_cap() -> Defs:
    defs = Defs()
    defs.accounts["acme"] = account(frequency_cap=CAP.model_dump())
    return defs


def test_the_send_over_the_cap_is_skipped_frequency_capped() -> None:
    defs = _defs_with_cap()
    sent = None
    outcomes = []
    for step in range(4):
        handled = handle_command(command(step=step), defs, SUBSCRIBED, NOON, sent=sent)
        outcomes.append((handled.result.outcome, handled.result.reason))
        sent = handled.sent or sent
    assert outcomes == [(ActionOutcome.DONE, None)] * 3 + [
        (ActionOutcome.SKIPPED, "frequency_capped")
    ]
    assert handled.sent is None  # nothing to store: no request went out
    topics = [
        e.topic if isinstance(e.topic, str) else e.topic.name for e in handled.effects.emissions
    ]
    assert topics == ["sms-status", "action-results"]
    status = handled.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert (status.status, status.reason) == (SmsStatus.SKIPPED, "frequency_capped")
    assert sent is not None
    assert [s.idempotency_key for s in sent.sent] == [
        sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", step) for step in range(3)
    ]


def test_a_deferred_send_is_not_counted_and_other_gates_come_first() -> None:
    defs = _defs_with_cap()
    full = log_of(1, 2, 3)
    deferred = handle_command(command(), defs, SUBSCRIBED, NIGHT, sent=full)
    assert (deferred.result.outcome, deferred.result.reason) == (
        ActionOutcome.DEFERRED,
        "quiet_hours",
    )
    assert deferred.sent is None
    unsubscribed = handle_command(command(), defs, None, NOON, sent=full)
    assert unsubscribed.result.reason == "not_subscribed"
