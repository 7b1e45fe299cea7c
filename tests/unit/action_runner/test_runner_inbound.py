"""Inbound keywords and gateway opt-outs: consent commands per contact, replies, index."""

from __future__ import annotations

from schemas.contacts import ContactChange
from schemas.sms import (
    InboundSms,
    NumberOptOut,
    OptOutSource,
    ProviderOptOut,
    SmsRequest,
    SmsStatusEvent,
)
from schemas.subscriptions import ConsentSource, SubscriptionStatus
from services.action_runner.inbound import handle_inbound
from services.action_runner.internal import WideConsentCommand
from services.action_runner.phone_index import (
    NumberEntry,
    apply_update,
    diff_numbers,
    needs_reindex,
    reindex_commands,
    touches_numbers,
)
from services.common.phones import normalize
from tests.unit.action_runner.defs import NOON, account

NUMBER = "+358401234567"
TWO = NumberEntry(contacts=["1001", "1002"])


def inbound(body: str, message_id: str | None = "SM1") -> InboundSms:
    return InboundSms.model_validate(
        {
            "account_id": "acme",
            "from": NUMBER,
            "to": "+358451234567",
            "body": body,
            "provider_message_id": message_id,
        }
    )


def commands(handled: object) -> list[WideConsentCommand]:
    return [
        e.event
        for e in handled.effects.emissions  # type: ignore[attr-defined]
        if isinstance(e.event, WideConsentCommand)
    ]


def opt_outs(handled: object) -> list[NumberOptOut]:
    return [
        e.event
        for e in handled.effects.emissions  # type: ignore[attr-defined]
        if isinstance(e.event, NumberOptOut)
    ]


def test_start_lifts_only_the_number_that_sends_it() -> None:
    handled = handle_inbound(inbound("Start."), TWO, account(), NOON)
    [opt_in] = opt_outs(handled)
    assert (opt_in.number, opt_in.opted_out, opt_in.keyword) == (NUMBER, False, "START")


def test_yes_out_of_context_changes_nothing() -> None:
    handled = handle_inbound(inbound("YES"), TWO, account(), NOON)
    assert handled.kind == "ignored"
    assert handled.effects.emissions == []


def test_an_account_word_opts_out() -> None:
    handled = handle_inbound(inbound("Lopeta!"), TWO, account(opt_out_keywords=["LOPETA"]), NOON)
    [opt_out] = opt_outs(handled)
    assert (opt_out.opted_out, opt_out.keyword) == (True, "LOPETA")


def test_stop_opts_out_every_contact_with_the_number_and_leaves_confirming_to_the_gateway() -> None:
    handled = handle_inbound(inbound(" stop "), TWO, account(), NOON)
    assert handled.kind == "stop"
    opted = commands(handled)
    assert [c.contact_id for c in opted] == ["1001", "1002"]
    assert all(c.status is SubscriptionStatus.UNSUBSCRIBED for c in opted)
    assert all((c.source, c.source_id) == (ConsentSource.INBOUND_KEYWORD, "STOP") for c in opted)
    assert all(c.provider_message_id == "SM1" for c in opted)
    # The number's opt-out comes first: the gates and the sender check it.
    keys = [e.key for e in handled.effects.emissions[:3]]
    assert keys == ["acme:+358401234567", "acme:1001", "acme:1002"]
    [opt_out] = opt_outs(handled)
    assert (opt_out.opted_out, opt_out.source, opt_out.keyword) == (
        True,
        OptOutSource.REPLY,
        "STOP",
    )
    assert (opt_out.number, opt_out.provider_message_id) == (NUMBER, "SM1")
    assert handled.entry is not None
    assert handled.entry.opted_out
    # The provider confirms opt-outs and blocks the number: no SMS of ours follows a STOP.
    assert not [e for e in handled.effects.emissions if isinstance(e.event, SmsRequest)]
    assert not [e for e in handled.effects.emissions if isinstance(e.event, SmsStatusEvent)]


def test_a_retried_webhook_yields_the_same_commands_and_reply() -> None:
    first = handle_inbound(inbound("STOP"), TWO, account(), NOON)
    retried = handle_inbound(inbound("STOP"), TWO, account(), NOON)
    assert [e.event for e in first.effects.emissions] == [
        e.event for e in retried.effects.emissions
    ]


def test_start_reverses_and_help_answers() -> None:
    stopped = handle_inbound(inbound("STOP"), TWO, account(), NOON).entry
    started = handle_inbound(inbound("unstop", "SM2"), stopped, account(), NOON)
    assert started.kind == "start"
    assert started.entry is not None
    assert not started.entry.opted_out
    assert {c.status for c in commands(started)} == {SubscriptionStatus.SUBSCRIBED}
    helped = handle_inbound(inbound("HELP", "SM3"), TWO, account(help_text="Acme: 555"), NOON)
    assert helped.kind == "help"
    assert helped.entry is None
    assert not commands(helped)
    replies = [e.event for e in helped.effects.emissions if isinstance(e.event, SmsRequest)]
    assert [r.body for r in replies] == ["Acme: 555"]
    default = handle_inbound(inbound("info", "SM4"), TWO, account(), NOON)
    replies = [e.event for e in default.effects.emissions if isinstance(e.event, SmsRequest)]
    assert replies[0].body == "acme: Reply STOP to opt out. Msg&data rates may apply."
    help_reply = next(e.event for e in helped.effects.emissions if isinstance(e.event, SmsRequest))
    assert replies[0].idempotency_key != help_reply.idempotency_key


def test_free_text_changes_nothing() -> None:
    handled = handle_inbound(inbound("please stop sending these"), TWO, account(), NOON)
    assert handled.kind == "ignored"
    assert not handled.effects.emissions
    assert handled.entry is None


def test_stop_from_an_unknown_number_marks_the_number() -> None:
    handled = handle_inbound(inbound("STOP"), None, account(), NOON)
    assert not commands(handled)
    assert handled.entry is not None
    assert handled.entry.opted_out


def test_no_reply_without_sms_access_but_the_consent_change_holds() -> None:
    handled = handle_inbound(inbound("START"), TWO, account(sms_access=False), NOON)
    assert len(commands(handled)) == 2
    assert not [e for e in handled.effects.emissions if isinstance(e.event, SmsRequest)]


def test_gateway_opt_out_includes_the_reported_contact_and_sends_nothing() -> None:
    event = ProviderOptOut(account_id="acme", phone=NUMBER, error_code="21610", contact_id="1003")
    handled = handle_inbound(event, TWO, account(), NOON)
    assert handled.kind == "provider_opt_out"
    assert [c.contact_id for c in commands(handled)] == ["1001", "1002", "1003"]
    assert all(
        (c.source, c.source_id) == (ConsentSource.GATEWAY_ERROR, "21610") for c in commands(handled)
    )
    assert not [e for e in handled.effects.emissions if isinstance(e.event, SmsRequest)]
    assert handled.entry is not None
    assert handled.entry.contacts == ["1001", "1002", "1003"]
    [opt_out] = opt_outs(handled)
    assert (opt_out.number, opt_out.opted_out, opt_out.source) == (
        NUMBER,
        True,
        OptOutSource.PROVIDER,
    )


def fi(value: object) -> str | None:
    return normalize(value, "FI")  # type: ignore[arg-type]


def contact_change(props: dict[str, object], deleted: bool = False) -> ContactChange:
    return ContactChange(account_id="acme", contact_id="1001", properties=props, deleted=deleted)  # type: ignore[arg-type]


def test_number_index_follows_partial_updates() -> None:
    assert not touches_numbers(contact_change({"firstname": "Aino"}))
    known, updates = diff_numbers(None, contact_change({"mobilephone": "040 123 4567"}), fi)
    assert known.numbers == [NUMBER]
    assert [(u.phone, u.present, u.key) for u in updates] == [(NUMBER, True, f"acme:{NUMBER}")]
    # phone added: mobilephone kept from before (a partial update)
    known, updates = diff_numbers(known, contact_change({"phone": "09 1234 5678"}), fi)
    assert known.numbers == [NUMBER, "+358912345678"]
    assert [(u.phone, u.present) for u in updates] == [("+358912345678", True)]
    # mobile changes: old one removed, new one added; garbage adds nothing
    known, updates = diff_numbers(
        known, contact_change({"mobilephone": "041 000 0000", "phone": "nonsense"}), fi
    )
    assert [(u.phone, u.present) for u in updates] == [
        (NUMBER, False),
        ("+358912345678", False),
        ("+358410000000", True),
    ]
    known, updates = diff_numbers(known, contact_change({}, deleted=True), fi)
    assert known.numbers == []
    assert [u.present for u in updates] == [False]


def test_a_contact_gaining_an_opted_out_number_is_opted_out_too() -> None:
    _, [added] = diff_numbers(None, contact_change({"mobilephone": NUMBER}), fi)
    others = NumberEntry(contacts=["1002"])
    stopped = handle_inbound(inbound("STOP"), others, account(), NOON).entry
    entry, command = apply_update(stopped, added)
    assert entry.contacts == ["1001", "1002"]
    assert command is not None
    assert (command.contact_id, command.status) == ("1001", SubscriptionStatus.UNSUBSCRIBED)
    assert command.source_id == "STOP"
    # Already listed: nothing new to inherit.
    entry, again = apply_update(entry, added)
    assert again is None
    fresh, none = apply_update(None, added)
    assert fresh.contacts == ["1001"]
    assert none is None


def test_sms_inbound_carries_two_event_types() -> None:
    from services.action_runner.inbound import decode_inbound
    from services.common.codec import DecodeError, encode

    assert isinstance(decode_inbound(encode(inbound("STOP"))), InboundSms)
    opt_out = ProviderOptOut(account_id="acme", phone=NUMBER, error_code="21610")
    assert isinstance(decode_inbound(encode(opt_out)), ProviderOptOut)
    for bad in (b'{"event_type": "sms.other"}', b"[1]", b"{nope", None):
        try:
            decode_inbound(bad)
        except DecodeError:
            continue
        raise AssertionError(f"{bad!r} decoded")


def test_a_contact_is_read_again_when_its_accounts_region_is_not_the_one_it_was_read_in() -> None:
    change = ContactChange(account_id="acme", contact_id="1", properties={"mobilephone": "040 1"})
    unknown, _ = diff_numbers(None, change, lambda v: normalize(v, None), None)
    assert unknown.numbers == []  # a national number without a region
    assert needs_reindex("acme:1", unknown, {"acme": "FI"})
    assert not needs_reindex("acme:1", unknown, {})  # the account is still unknown
    national = ContactChange(
        account_id="acme", contact_id="1", properties={"mobilephone": "040 123 4567"}
    )
    before, _ = diff_numbers(None, national, lambda v: normalize(v, None), None)
    again = ContactChange(account_id="acme", contact_id="1", properties={})
    after, updates = diff_numbers(before, again, fi, "FI")
    assert (after.numbers, after.region) == ([NUMBER], "FI")
    assert [(u.phone, u.present) for u in updates] == [(NUMBER, True)]
    assert not needs_reindex("acme:1", after, {"acme": "FI"})
    assert needs_reindex("acme:1", after, {"acme": "SE"})


def test_reindex_commands_name_the_changed_accounts_stale_contacts_only() -> None:
    read_without_region = {"raw": {"mobilephone": "040 1"}, "numbers": [], "region": None}
    read_in_fi = {"raw": {"mobilephone": "040 1"}, "numbers": [], "region": "FI"}
    stored = [
        ("acme:1", read_without_region),
        ("acme:2", read_in_fi),
        ("acme:3", {"raw": {}, "numbers": []}),  # no numbers to read
        ("other:4", read_without_region),  # its account did not change
    ]
    commands = reindex_commands(stored, {"acme": "FI", "other": "SE"}, {"acme"})
    assert [(c.account_id, c.contact_id, c.region) for c in commands] == [("acme", "1", "FI")]
    assert reindex_commands(stored, {"acme": "FI"}, {"acme"})[0].event_id == commands[0].event_id
