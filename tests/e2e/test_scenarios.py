"""Every scenario of the seed story, through the whole stack as processes.

All scenario contacts are published at once (module fixture), then each test checks its
own contact on ``sms-status`` and in the gateway simulator's ledger: exactly one gateway
message per SMS that should go out, none for the others.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.sms import FINAL_STATUSES, SmsStatus, SmsStatusEvent
from schemas.subscriptions import ConsentSource, LegalBasis, SubscriptionStatus
from schemas.topics import DEFINITIONS
from tests.e2e.definitions import SENDER, account
from tests.e2e.stack import DevStack
from tests.support import read_all

pytestmark = pytest.mark.e2e


def closed_window(now: datetime) -> str:
    """A quiet-hours window (UTC) that contains ``now`` and ends two hours later."""
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    return f'{{start: "{start:%H:%M}", end: "{end:%H:%M}"}}'


# contact id -> (account, workflow, number or None, properties, expected status, reason)
SCENARIOS: dict[str, tuple[str, str, str | None, list[str], SmsStatus, str | None]] = {
    "mobile": (
        "e2e", "subscribe-send", "+358401110001",
        ["firstname=Aino", "mobilephone=040 111 0001", "lifecyclestage=customer"],
        SmsStatus.DELIVERED, None,
    ),
    "phone-fallback": (
        "e2e", "subscribe-send", "+358501110002",
        ["firstname=Mikko", "phone=+358 50 111 0002", "mobilephone=null",
         "lifecyclestage=customer"],
        SmsStatus.DELIVERED, None,
    ),
    "not-marketing": (
        "e2e", "send-only", "+358401110003",
        ["mobilephone=040 111 0003", "hs_marketable_status=false", "segment=vip"],
        SmsStatus.SKIPPED, "not_marketing_contact",
    ),
    "not-subscribed": (
        "e2e", "send-only", "+358401110004",
        ["mobilephone=040 111 0004", "hs_marketable_status=true", "segment=vip"],
        SmsStatus.SKIPPED, "not_subscribed",
    ),
    "no-number": (
        "e2e", "subscribe-send", None,
        ["firstname=Olli", "email=olli@example.com", "lifecyclestage=customer"],
        SmsStatus.SKIPPED, "no_phone_number",
    ),
    "invalid-number": (
        "e2e", "subscribe-send", None,
        ["mobilephone=12345", "lifecyclestage=customer"],
        SmsStatus.SKIPPED, "invalid_phone_number",
    ),
    "no-sms-access": (
        "nosms", "subscribe-send", "+358401110007",
        ["mobilephone=040 111 0007", "lifecyclestage=customer"],
        SmsStatus.SKIPPED, "sms_access_missing",
    ),
    "stop": (
        "e2e", "subscribe-send", "+358401110008",
        ["firstname=Sanna", "mobilephone=040 111 0008", "lifecyclestage=customer"],
        SmsStatus.DELIVERED, None,
    ),
    "quiet-hours": (
        "quiet", "subscribe-send", "+358401110009",
        ["mobilephone=040 111 0009", "lifecyclestage=customer", "hs_timezone=UTC"],
        SmsStatus.DEFERRED, "quiet_hours",
    ),
}  # fmt: skip

SETTLED = FINAL_STATUSES | {SmsStatus.DEFERRED}


@pytest.fixture(scope="module")
def outcome(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SmsStatusEvent]:
    """Apply the definitions, publish every scenario's contact, wait until all settle."""
    folder = tmp_path_factory.mktemp("defs")
    text = "---".join(
        [
            account("e2e"),
            account("nosms", sms_access=False),
            account("quiet", quiet=closed_window(datetime.now(UTC))),
        ]
    )
    applied = stack.apply(folder, text)
    assert applied.returncode == 0, applied.stderr
    for contact, (account_id, _, _, properties, _, _) in SCENARIOS.items():
        stack.emit(account_id, contact, *properties)

    def settled() -> dict[str, SmsStatusEvent] | None:
        latest = stack.latest()
        found = {
            contact: latest.get((account_id, contact, workflow))
            for contact, (account_id, workflow, *_) in SCENARIOS.items()
        }
        if all(e is not None and e.status in SETTLED for e in found.values()):
            return {c: e for c, e in found.items() if e is not None}
        return None

    result: dict[str, SmsStatusEvent] = stack.wait(settled, "every scenario to settle", 150)
    return result


def gateway_count(stack: DevStack, number: str) -> int:
    return Counter(m["to"] for m in stack.gateway_messages())[number]


@pytest.mark.parametrize("contact", sorted(SCENARIOS))
def test_each_scenario_ends_as_expected(
    stack: DevStack, outcome: dict[str, SmsStatusEvent], contact: str
) -> None:
    _, _, number, _, status, reason = SCENARIOS[contact]
    event = outcome[contact]
    assert (event.status, event.reason) == (status, reason), event
    if number is not None:
        expected = 1 if status is SmsStatus.DELIVERED else 0
        assert gateway_count(stack, number) == expected
    if status is SmsStatus.DELIVERED:
        assert event.to_masked is not None
        assert number is not None
        assert number not in event.to_masked, "status events carry masked numbers only"
        assert event.segments == 1


def test_exactly_one_gateway_message_per_expected_sms(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    expected = {n for (_, _, n, _, s, _) in SCENARIOS.values() if s is SmsStatus.DELIVERED}
    ours = {n for (_, _, n, *_) in SCENARIOS.values() if n}
    received = Counter(m["to"] for m in stack.gateway_messages() if m["to"] in ours)
    assert received == Counter(dict.fromkeys(expected, 1))


def test_the_body_is_rendered_with_the_opt_out_text(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    (message,) = [m for m in stack.gateway_messages() if m["to"] == "+358401110001"]
    assert message["body"].startswith("Hei Aino! Welcome (e2e).")
    assert message["body"].rstrip().endswith("Reply STOP to opt out")
    assert message["from"] == SENDER
    assert message["idempotency_key"] == outcome["mobile"].idempotency_key


def test_subscribe_then_send_records_consent_before_the_sms(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    changes = [c for c in stack.subscription_changes() if c.contact_id == "mobile"]
    (subscribed,) = [c for c in changes if c.status is SubscriptionStatus.SUBSCRIBED]
    assert subscribed.subscription_type == "sms-marketing"
    assert subscribed.legal_basis is LegalBasis.CONSENT_WITH_NOTICE
    assert subscribed.legal_basis_explanation == "Ticked the SMS box at checkout"
    assert subscribed.processing_legal_basis is LegalBasis.PROCESS_AND_STORE
    assert subscribed.source is ConsentSource.WORKFLOW
    first_status = min(
        e.occurred_at
        for e in stack.statuses()
        if e.contact_id == "mobile" and e.account_id == "e2e"
    )
    assert subscribed.occurred_at <= first_status


def test_quiet_hours_defer_until_the_window_opens(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    event = outcome["quiet-hours"]
    assert event.deferred_until is not None
    wait = event.deferred_until - event.occurred_at
    assert timedelta(hours=1, minutes=55) <= wait <= timedelta(hours=2, minutes=1)
    assert gateway_count(stack, "+358401110009") == 0


def test_stop_reply_then_no_more_sms(stack: DevStack, outcome: dict[str, SmsStatusEvent]) -> None:
    number = "+358401110008"
    reply = stack.gateway("/_sim/inbound", {"from": number, "to": SENDER, "body": "Stop"})
    assert reply["forwarded"] is True

    def unsubscribed() -> bool:
        return any(
            c.contact_id == "stop" and c.status is SubscriptionStatus.UNSUBSCRIBED
            for c in stack.subscription_changes()
        )

    stack.wait(unsubscribed, "the STOP reply to unsubscribe the contact", 60)
    stack.emit("e2e", "stop", "segment=vip")

    def followup() -> SmsStatusEvent | None:
        event = stack.latest().get(("e2e", "stop", "send-only"))
        return event if event is not None and event.status in SETTLED else None

    event = stack.wait(followup, "the follow-up SMS of the opted-out contact", 60)
    assert (event.status, event.reason) == (SmsStatus.SKIPPED, "opted_out")
    marketing = [
        m for m in stack.gateway_messages() if m["to"] == number and "VIP offer" in m["body"]
    ]
    assert marketing == []
    welcome = [m for m in stack.gateway_messages() if m["to"] == number and "Welcome" in m["body"]]
    assert len(welcome) == 1


def test_a_workflow_sending_a_draft_is_rejected_at_apply(stack: DevStack, tmp_path: Path) -> None:
    before = read_all(stack.settings, DEFINITIONS)
    text = """
apiVersion: smsflow/v1
kind: SmsMessage
metadata: {id: teaser, account: e2e}
spec: {name: Teaser, body: "Soon!", subscription_type: sms-marketing, state: draft}
---
apiVersion: smsflow/v1
kind: Workflow
metadata: {id: teaser-flow, account: e2e}
spec:
  enabled: true
  actions:
    - {type: send_sms, message: teaser}
"""
    result = stack.apply(tmp_path, text, "draft.yaml")
    assert result.returncode == 1
    assert "draft.yaml:13: document 2 (Workflow e2e/teaser-flow)" in result.stderr
    assert "spec.actions[0].message" in result.stderr
    assert "is a draft" in result.stderr
    assert "nothing was published" in result.stderr
    assert read_all(stack.settings, DEFINITIONS) == before


def test_status_command_shows_every_scenario_with_masked_numbers(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    table = stack.smsflow("status", "--account", "e2e")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[2:]}
    assert "delivered" in rows["e2e:mobile"]
    assert "+35840*****01" in rows["e2e:mobile"]
    assert "invalid_phone_number" in rows["e2e:invalid-number"]
    lines = stack.smsflow("status", "--json", "--contact", "mobile")
    events = [SmsStatusEvent.model_validate_json(line) for line in lines.stdout.splitlines()]
    assert {e.contact_id for e in events} == {"mobile"}
    assert events[-1].status is SmsStatus.DELIVERED
    numbers = [n for (_, _, n, *_) in SCENARIOS.values() if n]
    assert not any(n in table.stdout + lines.stdout for n in numbers)


def test_logs_never_carry_a_full_number_or_a_body(
    stack: DevStack, outcome: dict[str, SmsStatusEvent]
) -> None:
    secrets = [n for (_, _, n, *_) in SCENARIOS.values() if n]
    secrets += [  # as written in the contact properties
        item.split("=", 1)[1]
        for (_, _, number, properties, *_) in SCENARIOS.values()
        for item in properties
        if number and item.startswith(("mobilephone=", "phone=")) and not item.endswith("=null")
    ]
    secrets += ["Welcome (e2e)", "VIP offer for"]
    for name in ("enroller", "action-runner", "sms-sender", "gateway-sim"):
        text = (stack.state_dir / "logs" / f"{name}.log").read_text(errors="replace")
        leaked = [s for s in secrets if s in text]
        assert leaked == [], f"{name}.log carries {leaked}"
        if name in ("action-runner", "sms-sender"):
            assert "+35840*****01" in text  # they do log the number, masked
