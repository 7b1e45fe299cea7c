"""The local view of ``opt-outs``: latest record per number, fail closed on a bad record."""

from __future__ import annotations

import pytest

from schemas.sms import NumberOptOut, OptOutSource
from services.common.codec import DecodeError, encode
from services.common.number_opt_outs import NumberOptOuts, partition_of

NUMBER = "+358401234567"


def record(opted_out: bool, account_id: str = "acme") -> bytes:
    return encode(
        NumberOptOut(
            account_id=account_id, number=NUMBER, opted_out=opted_out, source=OptOutSource.REPLY
        )
    )


def test_the_latest_record_per_number_and_account_counts() -> None:
    view = NumberOptOuts("t.opt-outs", {})
    view.apply(f"acme:{NUMBER}", record(True))
    assert view.opted_out("acme", NUMBER)
    assert not view.opted_out("other", NUMBER)  # an opt-out binds one account's sender
    view.apply(f"acme:{NUMBER}", record(False))
    assert not view.opted_out("acme", NUMBER)
    view.apply(f"acme:{NUMBER}", record(True))
    view.apply(f"acme:{NUMBER}", None)  # a tombstone forgets the number
    assert not view.opted_out("acme", NUMBER)


def test_an_unreadable_record_counts_as_opted_out_until_a_readable_one() -> None:
    view = NumberOptOuts("t.opt-outs", {})
    with pytest.raises(DecodeError):
        view.apply(f"acme:{NUMBER}", b"{not json")
    assert view.opted_out("acme", NUMBER)
    view.apply(f"acme:{NUMBER}", record(False))
    assert not view.opted_out("acme", NUMBER)


def test_partition_of_matches_the_producers_default_partitioner() -> None:
    from kafka.partitioner.default import murmur2  # kafka-python's, as the Java client's

    for key in (b"acme:+358401234567", b"acme:+14155550100", b"x"):
        assert partition_of(key, 6) == (murmur2(key) & 0x7FFFFFFF) % 6
