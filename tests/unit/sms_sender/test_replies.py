"""What a reply publishes: for its account, or opt-outs when nobody sends from its ``to``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.sms import InboundSms, NumberOptOut
from services.sms_sender.callbacks import InboundReply
from services.sms_sender.replies import reply_events
from tests.unit.sms_sender.factories import ACCOUNTS, ACME, PHONE

UNKNOWN = "+15550000000"


def test_a_reply_to_an_accounts_number_is_that_accounts_inbound_sms() -> None:
    (event,) = reply_events(InboundReply(PHONE, ACME, "hello", "SM1"), ACCOUNTS)
    assert isinstance(event, InboundSms)
    assert (event.account_id, event.from_, event.body) == ("acme", PHONE, "hello")


def test_every_delivery_of_a_reply_gets_the_same_event_ids() -> None:
    for to in (ACME, UNKNOWN):
        first = reply_events(InboundReply(PHONE, to, "STOP", "SM1"), ACCOUNTS)
        again = reply_events(InboundReply(PHONE, to, "STOP", "SM1"), ACCOUNTS)
        other = reply_events(InboundReply(PHONE, to, "STOP", "SM2"), ACCOUNTS)
        assert [e.event_id for e in first] == [e.event_id for e in again]
        assert {e.event_id for e in first}.isdisjoint(e.event_id for e in other)


@pytest.mark.parametrize(
    ("body", "accounts"),
    [
        ("ＳＴＯＰ please", ["acme", "beta"]),  # noqa: RUF001 - full-width on purpose
        ("opt out", ["acme", "beta"]),
        ("lopeta", ["acme"]),  # acme's own word
        ("START", []),
        ("HELP", []),
        ("please don't stop", []),
    ],
)
def test_only_an_opt_out_to_an_unknown_number_publishes(body: str, accounts: list[str]) -> None:
    events = reply_events(InboundReply(PHONE, UNKNOWN, body, "SM1"), ACCOUNTS)
    assert all(isinstance(e, NumberOptOut) and e.number == PHONE for e in events)
    assert [e.account_id for e in events] == accounts


def test_a_from_that_is_no_number_is_invalid() -> None:
    with pytest.raises(ValidationError):
        reply_events(InboundReply("anonymous", ACME, "STOP", "SM1"), ACCOUNTS)
