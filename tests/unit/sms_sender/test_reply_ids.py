"""Provider ids of published replies: bounded, claimed while in flight, read back from Kafka."""

from __future__ import annotations

from schemas.sms import InboundSms, NumberOptOut, OptOutSource
from services.common.codec import encode
from services.sms_sender.reply_ids import RecentIds, published_id, reply_event_id


def test_the_oldest_ids_are_forgotten_first() -> None:
    ids = RecentIds(4)
    for provider_id in ("a", "b", "c"):
        ids.add(provider_id)
    assert all(provider_id in ids for provider_id in "abc")
    ids.add("d")
    assert [p for p in "abcd" if p in ids] == ["c", "d"]
    assert len(ids) == 2


def test_an_id_seen_again_is_kept_as_recent() -> None:
    ids = RecentIds(4)
    for provider_id in ("a", "b", "c", "a", "d"):
        ids.add(provider_id)
    assert [p for p in "abcd" if p in ids] == ["a", "c", "d"]


def test_memory_stays_bounded() -> None:
    ids = RecentIds(1000)
    for n in range(10_000):
        ids.add(f"SM{n:032d}")
    assert 500 <= len(ids) <= 1000
    assert f"SM{9999:032d}" in ids
    assert f"SM{0:032d}" not in ids


def test_an_id_is_claimed_once_and_remembered_only_when_published() -> None:
    ids = RecentIds(10)
    assert ids.claim("a")
    assert not ids.claim("a")  # in flight
    ids.release("a", published=False)
    assert "a" not in ids
    assert ids.claim("a")
    ids.release("a", published=True)
    assert "a" in ids
    assert not ids.claim("a")


def test_ids_are_read_back_from_inbound_and_opt_out_records() -> None:
    inbound = InboundSms.model_validate(
        {"account_id": "acme", "from": "+358401111111", "to": "+358451234567", "body": "x"}
    )
    assert published_id(encode(inbound)) is None
    assert published_id(encode(inbound.model_copy(update={"provider_message_id": "SM1"}))) == (
        "SM1"
    )
    opt_out = NumberOptOut(
        account_id="acme",
        number="+358401111111",
        opted_out=True,
        source=OptOutSource.REPLY,
        provider_message_id="in_7",
    )
    assert published_id(encode(opt_out)) == "in_7"
    assert published_id(b"not json") is published_id(b"[1]") is published_id(None) is None


def test_event_ids_are_the_same_for_every_delivery_of_one_reply() -> None:
    first = reply_event_id("inbound", "acme", "SM1")
    assert first == reply_event_id("inbound", "acme", "SM1")
    assert (
        len(
            {
                first,
                reply_event_id("inbound", "beta", "SM1"),
                reply_event_id("opt_out", "acme", "SM1"),
            }
        )
        == 3
    )
