"""The local view of ``opt-outs``: latest record per number, fail closed on a bad record."""

from __future__ import annotations

import pytest

from schemas.sms import NumberOptOut, OptOutSource
from services.common.compacted_view import Change
from services.common.number_opt_outs import NumberOptOuts, partition_of

NUMBER = "+358401234567"
KEY = f"acme:{NUMBER}"


def record(opted_out: bool, account_id: str = "acme") -> list[Change[NumberOptOut]]:
    value = NumberOptOut(
        account_id=account_id, number=NUMBER, opted_out=opted_out, source=OptOutSource.REPLY
    )
    return [Change(0, value.key, value)]


def test_the_latest_record_per_number_and_account_counts() -> None:
    view = NumberOptOuts("t.opt-outs", {})
    view.apply(record(True))
    assert view.opted_out("acme", NUMBER)
    assert not view.opted_out("other", NUMBER)  # an opt-out binds one account's sender
    view.apply(record(False))
    assert not view.opted_out("acme", NUMBER)
    view.apply([*record(True), Change(0, KEY, None)])  # a tombstone forgets the number
    assert not view.opted_out("acme", NUMBER)
    assert view.get("acme", NUMBER) is None


def test_an_unreadable_record_counts_as_opted_out_until_a_readable_one() -> None:
    view = NumberOptOuts("t.opt-outs", {})
    view.apply([*record(False), Change(0, KEY, None, unreadable=True)])
    assert view.opted_out("acme", NUMBER)
    view.apply(record(False))
    assert not view.opted_out("acme", NUMBER)
    view.apply([Change(0, KEY, None, unreadable=True), Change(0, KEY, None)])
    assert not view.opted_out("acme", NUMBER)  # a later tombstone is read: nothing left


@pytest.mark.asyncio
async def test_a_view_not_running_proves_nothing() -> None:
    view = NumberOptOuts("t.opt-outs", {})
    assert not await view.caught_up(1.0)  # the gate then fails closed


def test_partition_of_matches_the_producers_default_partitioner() -> None:
    from kafka.partitioner.default import murmur2  # kafka-python's, as the Java client's

    for key in (b"acme:+358401234567", b"acme:+14155550100", b"x"):
        assert partition_of(key, 6) == (murmur2(key) & 0x7FFFFFFF) % 6
