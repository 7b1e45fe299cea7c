from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.ledger import LedgerState
from services.sms_sender.ledger import (
    AMBIGUOUS_OUTCOME,
    Await,
    Ledger,
    Send,
    Skip,
    can_follow,
    plan,
)
from services.sms_sender.statuses import advance
from tests.unit.sms_sender.factories import entry

S = LedgerState


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (None, S.SENDING, True),
        (S.SENDING, S.SENT, True),
        (S.SENDING, S.DELIVERED, True),  # a callback before the gateway's answer
        (S.SENDING, S.RETRYING, True),
        (S.RETRYING, S.SENDING, False),  # a new claim needs a higher attempt (below)
        (S.UNKNOWN, S.SENT, True),
        (S.UNKNOWN, S.FAILED, True),
        (S.SENT, S.DELIVERED, True),
        (S.SENT, S.UNDELIVERED, True),
        (S.SENT, S.FAILED, True),
        (S.SENT, S.SENT, False),  # a repeat
        (S.SENT, S.SENDING, False),  # never back to sending once accepted
        (S.SENT, S.UNKNOWN, False),
        (S.DELIVERED, S.UNDELIVERED, False),
        (S.DELIVERED, S.SENT, False),
        (S.UNDELIVERED, S.DELIVERED, False),
        (S.FAILED, S.SENDING, False),
        (S.FAILED, S.SENT, False),
    ],
)
def test_states_only_move_forward(old: S | None, new: S, allowed: bool) -> None:
    before = None if old is None else entry(old)
    assert can_follow(before, entry(new)) is allowed


def test_a_callback_may_overrule_an_ambiguous_failure() -> None:
    failed = entry(S.FAILED, reason=AMBIGUOUS_OUTCOME)
    assert can_follow(failed, entry(S.DELIVERED))
    assert can_follow(failed, entry(S.SENT))
    assert not can_follow(failed, entry(S.SENDING))


def test_a_stale_attempt_does_not_replace_a_newer_one() -> None:
    assert not can_follow(entry(S.SENDING, attempts=3), entry(S.RETRYING, attempts=2))
    assert can_follow(entry(S.SENDING, attempts=3), entry(S.RETRYING, attempts=3))


def test_plan_sends_new_keys_and_never_resends_settled_ones() -> None:
    assert plan(None, 60) == Send()
    for state in (S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED):
        settled = entry(state)
        assert plan(settled, 60) == Skip(settled)


def test_plan_resends_an_open_key_only_through_a_deduplicating_api() -> None:
    assert plan(entry(S.SENDING, attempts=2, api="http"), 60) == Send(2, ambiguous_before=True)
    assert plan(entry(S.UNKNOWN, attempts=1, api="http"), 60) == Send(1, ambiguous_before=True)
    # Refused without being processed: safe to send again, even on Twilio.
    assert plan(entry(S.RETRYING, attempts=2, api="twilio"), 60) == Send(2)
    for state in (S.SENDING, S.UNKNOWN):
        open_twilio = entry(state, api="twilio")
        decided = plan(open_twilio, 60)
        assert isinstance(decided, Await)
        assert decided.deadline == open_twilio.occurred_at + timedelta(seconds=60)


def test_ledger_keeps_the_latest_entry_its_partition_and_provider_ids() -> None:
    ledger = Ledger()
    sending = entry(S.SENDING)
    assert ledger.apply(sending, 4)
    sent = advance(sending, S.SENT, provider_message_id="SM1")
    assert ledger.apply(sent, 4)
    assert not ledger.apply(sending, 4)  # a stale copy read back from the topic
    assert ledger.get(sending.idempotency_key) == sent
    assert ledger.partition_of(sending.idempotency_key) == 4
    assert ledger.key_for_provider_id("SM1") == sending.idempotency_key
    assert len(ledger) == 1


def test_an_http_resend_past_the_gateways_idempotency_window_is_not_blind() -> None:
    from datetime import UTC, datetime, timedelta

    from services.sms_sender.ledger import Await

    old = entry(S.SENDING, attempts=1, api="http")
    later = old.occurred_at + timedelta(hours=25)
    assert plan(old, 60, old.occurred_at + timedelta(minutes=5), 86400) == Send(
        1, ambiguous_before=True
    )
    awaited = plan(old, 60, later, 86400)
    assert isinstance(awaited, Await)  # the gateway may have forgotten the key
    assert awaited.deadline < datetime.now(UTC) + timedelta(days=1)


def test_a_claim_needs_a_higher_attempt_than_every_claim_before() -> None:
    """Two instances that both read attempt 1 cannot both claim attempt 2."""
    first = entry(S.SENDING, attempts=2, writer="a", generation=1)
    second = entry(S.SENDING, attempts=2, writer="b", generation=1)
    assert can_follow(entry(S.RETRYING, attempts=1), first)
    assert not can_follow(first, second)
    assert can_follow(entry(S.RETRYING, attempts=2), entry(S.SENDING, attempts=3))


def test_an_open_claim_of_another_instance_is_foreign() -> None:
    from services.sms_sender.ledger import foreign_claim

    claim = entry(S.SENDING, writer="a", generation=3)
    assert foreign_claim(claim, "b")
    assert not foreign_claim(claim, "a")
    assert not foreign_claim(entry(S.SENDING), "b")  # written before claims had writers
    assert not foreign_claim(entry(S.RETRYING, writer="a"), "b")  # released


def test_settled_keys_leave_memory_but_not_the_ledger() -> None:
    from services.sms_sender.ledger import Ledger, RocksStore

    store = RocksStore()
    try:
        ledger = Ledger(store, recent=2)
        for n in range(1, 6):
            assert ledger.apply(entry(S.SENDING, n=n), n % 3)
            assert ledger.apply(entry(S.SENT, n=n, provider_message_id=f"SM{n}"), n % 3)
        assert ledger.apply(entry(S.SENDING, n=6, attempts=1), 0)
        assert len(ledger) == 6
        assert len(ledger._recent) <= 2  # memory: the open key and two recent ones
        assert set(ledger._open) == {"sms-key-0006"}
        first = ledger.get("sms-key-0001")  # read back from the store
        assert first is not None
        assert first.state is S.SENT
        assert ledger.partition_of("sms-key-0001") == 1
        assert ledger.key_for_provider_id("SM3") == "sms-key-0003"
        assert not ledger.apply(entry(S.SENDING, n=2, attempts=5), 2)  # still settled
    finally:
        store.close()
