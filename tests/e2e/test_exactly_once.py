"""Exactly once under replays, a crashed sender (kill -9) and a faulty gateway."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from schemas.contacts import ContactChange
from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.topics import CONTACT_CHANGES
from tests.e2e.definitions import account
from tests.e2e.stack import DevStack
from tests.support import produce

pytestmark = pytest.mark.e2e

ACCOUNT = "eo"


@pytest.fixture(scope="module")
def applied(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> DevStack:
    result = stack.apply(tmp_path_factory.mktemp("eo"), account(ACCOUNT))
    assert result.returncode == 0, result.stderr
    return stack


def customer(contact: str, number: str) -> ContactChange:
    return ContactChange(
        account_id=ACCOUNT,
        contact_id=contact,
        properties={"mobilephone": number, "lifecyclestage": "customer"},
    )


def wait_final(
    stack: DevStack, contacts: list[str], timeout_s: float = 90
) -> dict[str, SmsStatusEvent]:
    def probe() -> dict[str, SmsStatusEvent] | None:
        latest = stack.latest()
        found = {c: latest.get((ACCOUNT, c, "subscribe-send")) for c in contacts}
        final = {SmsStatus.DELIVERED, SmsStatus.FAILED, SmsStatus.UNDELIVERED}
        if all(e is not None and e.status in final for e in found.values()):
            return {c: e for c, e in found.items() if e is not None}
        return None

    result: dict[str, SmsStatusEvent] = stack.wait(
        probe, f"final statuses of {contacts}", timeout_s
    )
    return result


def sent_to(stack: DevStack, numbers: list[str]) -> Counter[str]:
    return Counter(m["to"] for m in stack.gateway_messages() if m["to"] in numbers)


def test_a_replayed_contact_change_sends_one_sms(applied: DevStack) -> None:
    change = customer("replay-1", "+358402220001")
    again = customer("replay-1", "+358402220001")  # same facts, new event id
    produce(applied.settings, CONTACT_CHANGES, [change, change, again])
    (event,) = wait_final(applied, ["replay-1"]).values()
    assert event.status is SmsStatus.DELIVERED
    produce(applied.settings, CONTACT_CHANGES, [change])
    time.sleep(3)  # room for a duplicate to show up, had the replay enrolled again
    keys = {e.idempotency_key for e in applied.statuses() if e.contact_id == "replay-1"}
    assert len(keys) == 1
    assert sent_to(applied, ["+358402220001"]) == Counter({"+358402220001": 1})


def test_a_sender_killed_mid_flight_sends_each_sms_once_after_restart(applied: DevStack) -> None:
    numbers = [f"+35840222{i:04d}" for i in range(10, 16)]
    contacts = [f"crash-{i}" for i in range(len(numbers))]
    produce(applied.settings, CONTACT_CHANGES, map(customer, contacts, numbers))

    def some_queued() -> bool:
        return any(
            e.contact_id in contacts and e.status is SmsStatus.QUEUED for e in applied.statuses()
        )

    applied.wait(some_queued, "the first SMS requests", 60)
    applied.services["sms-sender"].kill()
    status = applied.smsflow("dev", "status")
    assert status.returncode == 1
    assert any(
        line.startswith("sms-sender") and "stopped" in line for line in status.stdout.splitlines()
    ), status.stdout
    restarted = applied.smsflow("dev", "up", timeout_s=180)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "sms-sender    starting" in restarted.stdout
    assert "enroller      already running" in restarted.stdout
    outcome = wait_final(applied, contacts, 120)
    assert {e.status for e in outcome.values()} == {SmsStatus.DELIVERED}
    assert sent_to(applied, numbers) == Counter(dict.fromkeys(numbers, 1))


def test_gateway_faults_are_retried_without_duplicates(applied: DevStack) -> None:
    numbers = [f"+35840222{i:04d}" for i in range(20, 25)]
    contacts = [f"faulty-{i}" for i in range(len(numbers))]
    requests_before = len(applied.gateway("/_sim/requests"))
    applied.gateway("/_sim/config", {"fail_rate": 0.25, "throttle_rate": 0.25, "seed": 7})
    try:
        produce(applied.settings, CONTACT_CHANGES, map(customer, contacts, numbers))
        outcome = wait_final(applied, contacts, 120)
    finally:
        applied.gateway("/_sim/config", {"fail_rate": 0.0, "throttle_rate": 0.0})
    received = sent_to(applied, numbers)
    for contact, number in zip(contacts, numbers, strict=True):
        expected = 1 if outcome[contact].status is SmsStatus.DELIVERED else 0
        assert received[number] == expected, (contact, outcome[contact])
    assert sum(received.values()) >= 3  # six tries each: nearly all get through
    requests = len(applied.gateway("/_sim/requests")) - requests_before
    assert requests > len(numbers), "no fault was injected: the test proves nothing"
