"""The sender's view of opted-out numbers: the latest record per account and number wins."""

from __future__ import annotations

from schemas.sms import NumberOptOut, OptOutSource
from services.sms_sender.opt_outs import OptOutView


def opt_out(number: str, opted_out: bool, account: str = "acme") -> NumberOptOut:
    return NumberOptOut(
        account_id=account,
        number=number,
        opted_out=opted_out,
        keyword="STOP" if opted_out else "START",
        source=OptOutSource.REPLY,
    )


def test_the_latest_record_of_a_number_decides_per_account() -> None:
    view = OptOutView()
    view.apply([(opt_out("+358401234567", True), 0), (opt_out("+358401234568", True), 1)])
    view.apply([(opt_out("+358401234568", False), 1)])
    assert view.opted_out("acme", "+358401234567")
    assert not view.opted_out("acme", "+358401234568")  # START from that number lifted it
    assert not view.opted_out("other", "+358401234567")  # another account's sender
    assert len(view) == 1
