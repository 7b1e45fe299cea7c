"""The race of a STOP against SMS already queued for its number, through the real reply path.

A stack of its own whose sender sends 1 SMS/s per sender number queues 20 SMS to one number:
20 contacts of a household share it, each subscribed and then waiting for one shared instant
(``delay: until_property``), so the 20 sends are decided together. A second earlier three
neighbours' SMS (numbers of their own) leave the sender's rate limiter in debt, so all 20 are
queued in the sender before the first of them goes out. As soon as the first reaches the
gateway simulator, the number replies STOP through the simulator, which signs and posts it
to the sender's webhook: ``sms-inbound`` → action runner → ``opt-outs`` → the sender's view
of it, checked right before each gateway call. At most one more SMS may reach the gateway
(one already past that check); every other SMS ends ``skipped`` with reason ``opted_out``.

What reached the gateway is read from ``/_sim/requests`` (every provider call, answered or
refused), not only ``/_sim/messages``: the simulated carrier refuses an opted-out number
itself (21610), which would otherwise hide a send the sender should not have made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.contacts import ContactChange
from schemas.sms import (
    FINAL_STATUSES,
    NumberOptOut,
    SkipReason,
    SmsRequest,
    SmsStatus,
    SmsStatusEvent,
)
from schemas.topics import CONTACT_CHANGES, OPT_OUTS, SMS_REQUESTS, SMS_STATUS
from services.control.apply import apply_paths
from services.control.kafka import make_producer, send_model
from services.control.status_table import LatestStatuses
from tests.e2e.definitions import account, sender_of
from tests.e2e.replicas import Replicas
from tests.e2e.stack import DevStack
from tests.support import read_models, wait_for

pytestmark = pytest.mark.e2e

ACCOUNT = "race"
NUMBER = "+358465550001"  # a range no other test uses
CONTACTS = 20
NEIGHBOURS = 3  # SMS ahead of the household's at the sender: about 2 s of debt at 1 SMS/s
# Past the time the queue takes to drain at 1 SMS/s, had the STOP not held it.
DRAIN_S = CONTACTS + 5.0
SENDS = "/v1/messages"
# Long enough for every contact to be subscribed and waiting before its send instant.
GATHER_S = 10.0

SEND_AT = f"""
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: send-at, account: {ACCOUNT}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{{property: lifecyclestage, operator: eq, value: evangelist}}]]
  actions:
    - {{type: manage_subscription, channel: sms, subscription_type: sms-marketing,
       status: subscribed, legal_basis: CONSENT_WITH_NOTICE,
       legal_basis_explanation: "Ticked the SMS box at checkout",
       processing_legal_basis: PROCESS_AND_STORE}}
    - {{type: set_marketing_contact_status, marketing: true}}
    - {{type: delay, until_property: send_at}}
    - {{type: send_sms, message: welcome}}
"""


@pytest.fixture
def replicas(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Replicas]:
    handle = Replicas(
        kafka_bootstrap,
        tmp_path,
        count=1,
        partitions=3,
        environ={"SMSFLOW_SENDER_MESSAGES_PER_S": "1"},
    )
    try:
        handle.up()
        defs = tmp_path / "defs.yaml"
        defs.write_text(account(ACCOUNT) + "---\n" + SEND_AT)
        assert apply_paths(handle.settings, [defs]) == 0
        time.sleep(2)  # every service reads the definitions before contacts arrive
        yield handle
    finally:
        handle.down()


def gateway(replicas: Replicas) -> DevStack:
    """The stack's HTTP helpers against this stack's gateway simulator."""
    return DevStack(replicas.envs[0])


def contact(contact_id: str, number: str, send_at: datetime) -> ContactChange:
    return ContactChange(
        account_id=ACCOUNT,
        contact_id=contact_id,
        properties={
            "mobilephone": number,
            "lifecyclestage": "evangelist",  # not a customer: no other workflow of the account
            "send_at": send_at.isoformat(),
        },
    )


def enroll(replicas: Replicas) -> None:
    """The neighbours' SMS go a second before the household's 20."""
    send_at = datetime.now(UTC) + timedelta(seconds=GATHER_S)
    changes = [
        contact(f"neighbour-{i}", f"+35846555{2000 + 11 * i:04d}", send_at - timedelta(seconds=1))
        for i in range(NEIGHBOURS)
    ] + [contact(f"household-{i}", NUMBER, send_at) for i in range(CONTACTS)]
    producer = make_producer(replicas.settings)
    try:
        for change in changes:
            send_model(producer, replicas.settings.topic(CONTACT_CHANGES), change)
        producer.flush(timeout=30)
    finally:
        producer.close()


def sends(stack: DevStack) -> list[dict[str, Any]]:
    """Every provider call the simulator received, in order (answered or refused)."""
    return [r for r in stack.gateway("/_sim/requests") if r["path"] == SENDS]


def first_reached(sent: list[dict[str, Any]]) -> dict[str, float]:
    """Idempotency key -> when its first call reached the gateway (epoch seconds)."""
    out: dict[str, float] = {}
    for request in sent:
        at = datetime.fromisoformat(request["received_at"]).timestamp()
        out.setdefault(request["idempotency_key"], at)
    return out


def household_sms(replicas: Replicas) -> dict[str, SmsStatusEvent]:
    """Household contact -> the latest status of its SMS."""
    events = [
        e
        for e in read_models(replicas.settings, SMS_STATUS, SmsStatusEvent)
        if e.account_id == ACCOUNT and e.contact_id.startswith("household-")
    ]
    return {e.contact_id: e for e in LatestStatuses().extend(events).rows()}


def settled(replicas: Replicas) -> dict[str, SmsStatusEvent] | None:
    statuses = household_sms(replicas)
    done = len(statuses) == CONTACTS and all(e.status in FINAL_STATUSES for e in statuses.values())
    return statuses if done else None


def first_at_gateway(stack: DevStack) -> float | None:
    """When the first SMS to the household's number was accepted (epoch seconds)."""
    for message in stack.gateway_messages():  # in acceptance order
        if message["to"] == NUMBER:
            return datetime.fromisoformat(message["received_at"]).timestamp()
    return None


def test_a_stop_replied_after_the_first_sms_holds_the_rest_of_the_queue(
    replicas: Replicas,
) -> None:
    stack = gateway(replicas)
    enroll(replicas)
    first_at = wait_for(
        lambda: first_at_gateway(stack),
        timeout_s=GATHER_S + 90,
        interval_s=0.05,  # the STOP follows the first SMS at once
        what="the first SMS at the gateway",
    )

    stop_at = time.time()
    answer = stack.gateway(
        "/_sim/inbound", {"from": NUMBER, "to": sender_of(ACCOUNT), "body": "STOP"}
    )
    answered_at = time.time()
    assert answer["forwarded"] is True, answer
    assert 200 <= answer["status"] < 300, answer

    time.sleep(max(0.0, first_at + DRAIN_S - time.time()))
    statuses = wait_for(
        lambda: settled(replicas), timeout_s=60, what="every SMS of the household final"
    )

    requests = [
        r
        for r in read_models(replicas.settings, SMS_REQUESTS, SmsRequest)
        if r.account_id == ACCOUNT and r.to == NUMBER
    ]
    queued = {r.idempotency_key for r in requests}
    reached = {k: at for k, at in first_reached(sends(stack)).items() if k in queued}
    queued_at = sorted(r.occurred_at.timestamp() - first_at for r in requests)
    opted_out_at = [
        o.occurred_at.timestamp() - first_at
        for o in read_models(replicas.settings, OPT_OUTS, NumberOptOut)
        if o.number == NUMBER and o.opted_out
    ]
    timeline = (
        f"first SMS +0.00s, STOP posted {stop_at - first_at:+.2f}s, "
        f"webhook answered {answered_at - first_at:+.2f}s, opt-out recorded at "
        f"{[f'{at:+.2f}s' for at in opted_out_at]}; household calls at "
        f"{[f'{at - first_at:+.2f}s' for at in sorted(reached.values())]}; "
        f"{len(queued)} requests queued at {[f'{at:+.2f}s' for at in queued_at]}"
        f"\n{replicas.logs(40)}"
    )
    # All 20 were queued in the sender, not held back by the runner's own gate.
    assert len(queued) == CONTACTS, timeline
    # The first SMS, and at most one more already past the sender's last check.
    assert 1 <= len(reached) <= 2, timeline
    messages = [m for m in stack.gateway_messages() if m["to"] == NUMBER]
    assert len(messages) <= 2, timeline

    held = {c: e for c, e in statuses.items() if e.idempotency_key not in reached}
    assert len(held) == CONTACTS - len(reached), timeline
    for contact_id, event in held.items():
        assert event.status is SmsStatus.SKIPPED, (contact_id, event, timeline)
        assert event.reason == SkipReason.OPTED_OUT.value, (contact_id, event, timeline)
    print(f"{len(reached)} reached the gateway; {timeline.splitlines()[0]}")
