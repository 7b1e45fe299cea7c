"""The gate walk of Send SMS: one row per gate and reason, and the order between them."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.sms import Encoding
from schemas.subscriptions import ConsentSource, SubscriptionStatus
from services.action_runner.consent import ConsentRecord
from services.action_runner.gates import Decision, Verdict, decide_send
from tests.unit.action_runner.defs import (
    CONTACT,
    NIGHT,
    NOON,
    SUBSCRIBED,
    account,
    change,
    ledger,
    message,
    workflow,
)

UNSET = object()


def decide(
    *,
    wf: Any = UNSET,
    acct: Any = UNSET,
    msg: Any = UNSET,
    contact: dict[str, Any] | None = None,
    consent: Any = SUBSCRIBED,
    now: datetime = NOON,
    max_segments: int = 10,
    opted_out: set[str] | None = None,
) -> Decision:
    numbers = opted_out or set()
    return decide_send(
        workflow=workflow() if wf is UNSET else wf,
        account=account() if acct is UNSET else acct,
        message=message() if msg is UNSET else msg,
        contact=CONTACT if contact is None else contact,
        consent=consent,
        now=now,
        max_segments=max_segments,
        opted_out=lambda account_id, number: f"{account_id}:{number}" in numbers,
    )


def test_everything_in_order_sends() -> None:
    decision = decide()
    assert decision.verdict is Verdict.SEND
    assert decision.to == "+358401234567"
    assert decision.to_masked == "+35840*****67"
    assert decision.body == "Hei Aino! Tervetuloa.\nReply STOP to opt out"
    assert (decision.encoding, decision.segments) == (Encoding.GSM7, 1)
    assert decision.until is None


OPTED_OUT = ledger(
    change(SubscriptionStatus.SUBSCRIBED),
    change(SubscriptionStatus.UNSUBSCRIBED, None, ConsentSource.INBOUND_KEYWORD),
)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"wf": workflow(enabled=False)}, "workflow_disabled"),
        ({"wf": None}, "workflow_disabled"),
        ({"acct": account(sms_access=False)}, "sms_access_missing"),
        ({"acct": None}, "sms_access_missing"),
        ({"msg": None}, "message_not_published"),
        ({"msg": message(state="draft")}, "message_not_published"),
        ({"msg": message(delivery="manual")}, "message_not_published"),
        ({"contact": {**CONTACT, "hs_marketable_status": "false"}}, "not_marketing_contact"),
        ({"contact": {**CONTACT, "hs_marketable_status": None}}, "not_marketing_contact"),
        ({"contact": {**CONTACT, "hs_marketable_status": False}}, "not_marketing_contact"),
        (
            {"contact": {k: v for k, v in CONTACT.items() if k != "hs_marketable_status"}},
            "not_marketing_contact",
        ),
        ({"consent": None}, "not_subscribed"),
        ({"consent": ConsentRecord()}, "not_subscribed"),
        ({"consent": ledger(change(SubscriptionStatus.UNSUBSCRIBED))}, "not_subscribed"),
        (
            {"consent": ledger(change(SubscriptionStatus.SUBSCRIBED, "other-type"))},
            "not_subscribed",
        ),
        ({"contact": {**CONTACT, "mobilephone": None, "phone": None}}, "no_phone_number"),
        ({"contact": {**CONTACT, "mobilephone": " ", "phone": ""}}, "no_phone_number"),
        ({"contact": {**CONTACT, "mobilephone": "12"}}, "invalid_phone_number"),
        ({"contact": {**CONTACT, "mobilephone": "call me"}}, "invalid_phone_number"),
        ({"acct": account(default_region="US")}, "invalid_phone_number"),  # 040... is not US
        ({"opted_out": {"acme:+358401234567"}}, "opted_out"),
        ({"opted_out": {"acme:+358401234567"}, "consent": OPTED_OUT}, "opted_out"),
        ({"msg": message(body="x" * 1600)}, "too_long"),
        ({"msg": message(body="Ж" * 100), "max_segments": 1}, "too_long"),
    ],
)
def test_each_gate_skips_with_its_reason(overrides: dict[str, Any], reason: str) -> None:
    decision = decide(**overrides)
    assert (decision.verdict, decision.reason) == (Verdict.SKIP, reason)


def test_a_stop_binds_the_number_not_the_contact() -> None:
    # The contact's wide opt-out is its audit trail; the number's own state decides.
    assert decide(consent=OPTED_OUT).verdict is Verdict.SEND
    other_number = {"acme:+358409999999", "other:+358401234567"}
    assert decide(opted_out=other_number).verdict is Verdict.SEND


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # Earlier gates win over an opted-out number ...
        ({"consent": None}, "not_subscribed"),
        ({"contact": {**CONTACT, "hs_marketable_status": "false"}}, "not_marketing_contact"),
        ({"wf": None}, "workflow_disabled"),
        # ... and it wins over later ones: too long, quiet hours, a broken body.
        ({"msg": message(body="x" * 1600)}, "opted_out"),
        ({"msg": message(body="{{ contact.x.y() }}")}, "opted_out"),
        (
            {"now": NIGHT, "acct": account(quiet_hours={"start": "20:00", "end": "08:00"})},
            "opted_out",
        ),
    ],
)
def test_opted_out_comes_right_after_the_number_checks(
    overrides: dict[str, Any], reason: str
) -> None:
    decision = decide(opted_out={"acme:+358401234567"}, **overrides)
    assert (decision.verdict, decision.reason) == (Verdict.SKIP, reason)


def test_an_unreadable_opt_out_fails_closed() -> None:
    def broken(account_id: str, number: str) -> bool:
        raise RuntimeError("view gone")

    decision = decide_send(
        workflow=workflow(),
        account=account(),
        message=message(),
        contact=CONTACT,
        consent=SUBSCRIBED,
        now=NOON,
        opted_out=broken,
    )
    assert (decision.verdict, decision.reason) == (Verdict.SKIP, "opted_out")


def test_marketing_status_accepts_json_true_and_any_case() -> None:
    for value in (True, "true", "TRUE", " True "):
        assert decide(contact={**CONTACT, "hs_marketable_status": value}).verdict is Verdict.SEND


def test_phone_is_used_when_mobile_has_no_value() -> None:
    decision = decide(contact={**CONTACT, "mobilephone": "", "phone": "09 1234 5678"})
    assert decision.verdict is Verdict.SEND
    assert decision.to == "+358912345678"


def test_gates_are_checked_in_the_contract_order() -> None:
    """Start with every gate failing; fix them one by one; each time the next reason shows."""
    failing: dict[str, Any] = {
        "wf": workflow(enabled=False),
        "acct": account(sms_access=False),
        "msg": message(state="draft", body="x" * 1700),
        "contact": {"hs_marketable_status": "false", "mobilephone": None},
        "consent": None,
    }
    fixes: list[tuple[str, dict[str, Any]]] = [
        ("workflow_disabled", {"wf": workflow()}),
        ("sms_access_missing", {"acct": account()}),
        ("message_not_published", {"msg": message(body="x" * 1700)}),
        ("not_marketing_contact", {"contact": {"hs_marketable_status": "true"}}),
        ("not_subscribed", {"consent": SUBSCRIBED}),
        ("no_phone_number", {"contact": {"hs_marketable_status": "true", "mobilephone": "1"}}),
        (
            "invalid_phone_number",
            {"contact": {"hs_marketable_status": "true", "mobilephone": "0401234567"}},
        ),
        ("too_long", {"msg": message()}),
    ]
    for reason, fix in fixes:
        assert decide(**failing).reason == reason
        failing.update(fix)
    assert decide(**failing, now=NIGHT).verdict is Verdict.DEFER
    assert decide(**failing).verdict is Verdict.SEND


class _Broken:
    @property
    def opted_out_of_all(self) -> bool:
        raise RuntimeError("ledger unreadable")


def test_consent_fails_closed() -> None:
    assert decide(consent=_Broken()).reason == "not_subscribed"


def test_quiet_hours_defer_after_every_skip_gate() -> None:
    decision = decide(now=NIGHT)
    assert decision.verdict is Verdict.DEFER
    assert decision.reason == "quiet_hours"
    assert decision.until == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # 08:00 Helsinki
    # A skip wins over quiet hours: nothing is deferred that would be skipped anyway.
    assert decide(now=NIGHT, consent=None).verdict is Verdict.SKIP


def test_contact_time_zone_wins_over_the_number() -> None:
    # 23:00 in Helsinki is 16:00 in New York: open there.
    contact = {**CONTACT, "hs_timezone": "america_slash_new_york"}
    assert decide(now=NIGHT, contact=contact).verdict is Verdict.SEND


def test_no_quiet_hours_configured_never_defers() -> None:
    assert decide(now=NIGHT, acct=account(quiet_hours=None)).verdict is Verdict.SEND


def test_toll_free_number_waits_until_all_its_zones_are_open() -> None:
    contact = {**CONTACT, "mobilephone": "+1 800 555 0100"}  # 42 North American zones
    decision = decide(contact=contact, now=NOON)  # 10:00Z: night all over North America
    assert decision.verdict is Verdict.DEFER
    assert decision.until is not None
    for name in ("America/Adak", "America/New_York", "America/Barbados", "America/Vancouver"):
        local = decision.until.astimezone(ZoneInfo(name)).time()
        assert time(8, 0) <= local < time(20, 0), name


def test_zones_without_a_common_window_fall_back_to_the_account_zone() -> None:
    # Open only 08:00-10:00: the number's zones, hours apart, never share an open instant.
    acct = account(time_zone="Europe/Helsinki", quiet_hours={"start": "10:00", "end": "08:00"})
    contact = {**CONTACT, "mobilephone": "+1 800 555 0100"}
    morning_in_helsinki = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
    assert decide(contact=contact, acct=acct, now=morning_in_helsinki).verdict is Verdict.SEND
    assert decide(contact=contact, acct=acct, now=NOON).verdict is Verdict.DEFER


def test_render_failure_is_a_failure_not_a_crash() -> None:
    decision = decide(msg=message(body="Hi {{ contact.firstname"))
    assert decision.verdict is Verdict.FAIL
    assert decision.reason is not None
    assert decision.reason.startswith("render_failed")


def test_unicode_body_is_ucs2_and_counted() -> None:
    decision = decide(msg=message(body="Привет " * 12), acct=account(opt_out_text=None))
    assert (decision.encoding, decision.segments) == (Encoding.UCS2, 2)
