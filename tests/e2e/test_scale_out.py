"""Scale-out: two instances of each service share the partitions; one of each dies (kill -9)
in the middle of a steady flow of contacts, and the survivors finish the work.

Everything is observed through the public contract only: the gateway simulator's
``/_sim/messages`` (what was really sent), ``enrollment-events``, ``sms-requests`` and
``sms-status``. The deploy/k8s manifests run this many replicas of each service.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from schemas.contacts import ContactChange
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import FINAL_STATUSES, SmsRequest, SmsStatus, SmsStatusEvent
from schemas.topics import CONTACT_CHANGES, ENROLLMENT_EVENTS, SMS_REQUESTS, SMS_STATUS
from services.control.apply import apply_paths
from services.control.kafka import make_producer, send_model
from tests.e2e.definitions import account
from tests.e2e.replicas import SERVICES, Replicas
from tests.support import read_models

pytestmark = pytest.mark.e2e

REPLICAS = 2  # the replica count of every Deployment in deploy/k8s
PARTITIONS = 6  # and their partition count
ACCOUNT = "scale"
CONTACTS = 300
RATE = 20.0  # contacts per second: a steady flow over some 15 s
# When (after how many contacts) one instance of each service is killed, and which one.
KILLS = {90: ("enroller", 1), 150: ("action-runner", 0), 210: ("sms-sender", 1)}
WAIT_S = 300.0  # bounded; generous for a loaded machine (a rebalance after each kill)
# A dead member's partitions move after this long; shorter than the defaults to keep CI quick.
SESSION_TIMEOUTS = {
    "SMSFLOW_ENROLLER_SESSION_TIMEOUT_S": "10",
    "SMSFLOW_ACTION_RUNNER_SESSION_TIMEOUT_S": "10",
    "SMSFLOW_SENDER_SESSION_TIMEOUT_MS": "10000",
}

# Contacts whose stage is vip run a workflow with two SMS, the second after a short delay:
# the sender sends requests concurrently, so workflow order at the gateway is the order of
# the actions (each waits for the one before), which the delay makes observable.
TWO_SMS = f"""
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: two-sms, account: {ACCOUNT}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{{property: lifecyclestage, operator: eq, value: vip}}]]
  actions:
    - {{type: manage_subscription, channel: sms, subscription_type: sms-marketing,
       status: subscribed, legal_basis: CONSENT_WITH_NOTICE,
       legal_basis_explanation: "Asked for VIP offers by SMS",
       processing_legal_basis: PROCESS_AND_STORE}}
    - {{type: set_marketing_contact_status, marketing: true}}
    - {{type: send_sms, message: welcome}}
    - {{type: delay, seconds: 1}}
    - {{type: send_sms, message: followup}}
"""


def number(i: int) -> str:
    return f"+35840{7_000_000 + i}"


def contact(i: int) -> str:
    return f"s{i}"


def kind(i: int) -> str:
    """vip: two SMS; lead: a lead first, a customer in a second change; else a customer,
    some of whom get a later change no workflow cares about."""
    return ("vip", "lead", "customer", "customer")[i % 4]


def workflow_of(i: int) -> str:
    return "two-sms" if kind(i) == "vip" else "subscribe-send"


def expected_bodies(i: int) -> list[str]:
    return ["welcome", "followup"] if kind(i) == "vip" else ["welcome"]


def change(i: int, **properties: str) -> ContactChange:
    return ContactChange(account_id=ACCOUNT, contact_id=contact(i), properties=properties)


def first_changes(i: int) -> list[ContactChange]:
    base = {"firstname": f"Nr{i}", "mobilephone": number(i)}
    if kind(i) == "lead":
        return [
            change(i, **base, lifecyclestage="lead"),
            change(i, lifecyclestage="customer"),
        ]
    return [change(i, **base, lifecyclestage="vip" if kind(i) == "vip" else "customer")]


def body_kind(body: str) -> str:
    return "followup" if body.startswith("VIP offer") else "welcome"


@pytest.fixture
def replicas(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Replicas]:
    handle = Replicas(kafka_bootstrap, tmp_path, REPLICAS, PARTITIONS, SESSION_TIMEOUTS)
    try:
        handle.up()
        defs = tmp_path / "defs.yaml"
        defs.write_text(account(ACCOUNT) + "---\n" + TWO_SMS)
        assert apply_paths(handle.settings, [defs]) == 0
        time.sleep(2)  # every instance reads the definitions before contacts arrive
        yield handle
    finally:
        handle.down()


def publish(replicas: Replicas, killed: list[tuple[str, int, int]]) -> None:
    """A steady flow of contact changes, killing one instance of each service on the way."""
    settings = replicas.settings
    producer = make_producer(settings)
    topic = settings.topic(CONTACT_CHANGES)
    began = time.monotonic()
    try:
        for i in range(CONTACTS):
            time.sleep(max(0.0, began + i / RATE - time.monotonic()))
            for event in first_changes(i):
                send_model(producer, topic, event)
            j = i - 40  # a change no workflow reads, for a contact enrolled a while ago
            if j >= 0 and j % 4 == 3:
                send_model(producer, topic, change(j, firstname=f"Renamed{j}"))
            if i in KILLS:
                producer.flush(timeout=30)
                name, index = KILLS[i]
                killed.append((name, index, replicas.kill(name, index)))
        producer.flush(timeout=30)
    finally:
        producer.close()


def gateway_messages(replicas: Replicas) -> list[dict[str, Any]]:
    url = f"{replicas.gateway_url}/_sim/messages"
    with urllib.request.urlopen(url, timeout=10) as response:
        messages: list[dict[str, Any]] = json.load(response)
    return messages


def sent_by_number(replicas: Replicas) -> dict[str, list[str]]:
    """Number -> the kinds of SMS the gateway accepted for it, in the order it did."""
    out: dict[str, list[str]] = defaultdict(list)
    for message in gateway_messages(replicas):  # in acceptance order
        out[message["to"]].append(body_kind(message["body"]))
    return out


def enrollments(replicas: Replicas) -> dict[tuple[str, str, str], set[str | None]]:
    """(contact, workflow, decision) -> the enrollments with such an event. After a crash
    an event may be published again (with the same event id): not a new enrollment."""
    found: dict[tuple[str, str, str], set[str | None]] = defaultdict(set)
    for event in read_models(replicas.settings, ENROLLMENT_EVENTS, EnrollmentEvent):
        if event.account_id == ACCOUNT:
            found[(event.contact_id, event.workflow_id, event.decision.value)].add(
                event.enrollment_id
            )
    return found


def done(replicas: Replicas) -> bool:
    sent = sent_by_number(replicas)
    if sum(len(sent.get(number(i), [])) for i in range(CONTACTS)) < sum(
        len(expected_bodies(i)) for i in range(CONTACTS)
    ):
        return False
    found = enrollments(replicas)
    completed = EnrollmentDecision.COMPLETED.value
    return all(found.get((contact(i), workflow_of(i), completed)) for i in range(CONTACTS))


def diagnose(replicas: Replicas, killed: list[tuple[str, int, int]]) -> str:
    sent = sent_by_number(replicas)
    found = enrollments(replicas)
    wrong = {
        contact(i): sent.get(number(i), [])
        for i in range(CONTACTS)
        if sent.get(number(i), []) != expected_bodies(i)
    }
    unfinished = [
        contact(i)
        for i in range(CONTACTS)
        if not found.get((contact(i), workflow_of(i), EnrollmentDecision.COMPLETED.value))
    ]
    return (
        f"killed (service, instance, pid): {killed}\n"
        f"{len(wrong)} contacts with wrong SMS (first 20): {dict(list(wrong.items())[:20])}\n"
        f"{len(unfinished)} enrollments not completed (first 20): {unfinished[:20]}\n"
        f"{replicas.logs()}"
    )


RANK = {SmsStatus.QUEUED: 0, SmsStatus.DEFERRED: 0, SmsStatus.SENT: 1}
FINAL_RANK = max(RANK.values()) + 1


def histories(events: list[SmsStatusEvent]) -> dict[str, list[SmsStatusEvent]]:
    """Each SMS's status events in topic order (the topic is read partition by partition,
    and one SMS's events share a partition). After a crash a status may be announced again
    as the same event (same ``event_id``): consumers drop the repeat, and so does this."""
    out: dict[str, list[SmsStatusEvent]] = defaultdict(list)
    seen: set[str] = set()
    for event in events:
        if event.account_id == ACCOUNT and event.idempotency_key and event.event_id not in seen:
            seen.add(event.event_id)
            out[event.idempotency_key].append(event)
    return out


def backwards(history: list[SmsStatusEvent]) -> bool:
    """Whether the statuses go back (sent after delivered), or two differ in their outcome."""
    ranks = [RANK.get(e.status, FINAL_RANK) for e in history]
    return ranks != sorted(ranks) or len({e.status for e in history} & FINAL_STATUSES) > 1


def statuses(history: list[SmsStatusEvent]) -> list[str]:
    return [e.status.value for e in history]


def test_two_of_each_service_survive_losing_one_of_each(replicas: Replicas) -> None:
    killed: list[tuple[str, int, int]] = []
    producer = threading.Thread(target=publish, args=(replicas, killed), daemon=True)
    producer.start()
    producer.join(timeout=CONTACTS / RATE + 60)
    assert not producer.is_alive(), "publishing contact changes stalled"
    assert [k[:2] for k in killed] == list(KILLS.values())

    deadline = time.monotonic() + WAIT_S
    while not done(replicas):
        if time.monotonic() > deadline:
            pytest.fail(f"not done after {WAIT_S:.0f}s\n{diagnose(replicas, killed)}")
        time.sleep(2)
    time.sleep(3)  # room for a late duplicate to show up

    # 0 lost, 0 duplicate SMS, and a contact's two SMS in workflow order.
    sent = sent_by_number(replicas)
    wrong = {
        contact(i): sent.get(number(i), [])
        for i in range(CONTACTS)
        if sent.get(number(i), []) != expected_bodies(i)
    }
    assert not wrong, diagnose(replicas, killed)
    assert sum(map(len, sent.values())) == sum(len(expected_bodies(i)) for i in range(CONTACTS))
    # Both senders had a share of the partitions: each SMS names its sender's webhook URL.
    senders = {urlsplit(m["status_callback"]).port for m in gateway_messages(replicas)}
    assert senders == {int(env["SMSFLOW_SENDER_PORT"]) for env in replicas.envs}

    # Every contact enrolls once, in the right workflow, and that enrollment completes.
    found = enrollments(replicas)
    for i in range(CONTACTS):
        enrolled = found.get((contact(i), workflow_of(i), EnrollmentDecision.ENROLLED.value))
        completed = found.get((contact(i), workflow_of(i), EnrollmentDecision.COMPLETED.value))
        story = (contact(i), {k: v for k, v in found.items() if k[0] == contact(i)})
        assert enrolled is not None, story
        assert len(enrolled) == 1, story
        assert completed == enrolled, story
    assert {k[1] for k in found} == {"subscribe-send", "two-sms"}

    # Per contact, the runner asked for the SMS in workflow order (a replay after the
    # runner's crash may repeat a request, never reorder them).
    asked: dict[str, list[str]] = defaultdict(list)
    for request in read_models(replicas.settings, SMS_REQUESTS, SmsRequest):
        kinds = asked[request.contact_id]
        if not kinds or kinds[-1] != request.message_id:
            kinds.append(request.message_id or "")
    for i in range(CONTACTS):
        assert asked[contact(i)] == expected_bodies(i), (contact(i), asked[contact(i)])

    # Each SMS was announced sent, and its statuses only move forward: in the order they
    # happened (occurred_at: one clock here), and in topic order for those the sender
    # announces. (A delivery report the simulator sent to the killed sender is lost: here
    # each sender has a webhook URL of its own, behind an Ingress they would share one.)
    found_statuses = histories(read_models(replicas.settings, SMS_STATUS, SmsStatusEvent))
    assert len(found_statuses) == sum(len(expected_bodies(i)) for i in range(CONTACTS))
    for key, history in found_statuses.items():
        assert SmsStatus.SENT in {e.status for e in history}, (key, statuses(history))
        in_time = sorted(history, key=lambda e: e.occurred_at)
        assert not backwards(in_time), (key, statuses(in_time))
        # The runner produces ``queued`` before its request, so it is in the topic before
        # anything the sender announces for that SMS.
        assert not backwards(history), (key, statuses(history))

    # The survivors did the work: the killed instances are gone, the others still run.
    for name in SERVICES:
        for index in range(REPLICAS):
            gone = replicas.pid(name, index) is None
            assert gone == ((name, index) in {k[:2] for k in killed}), (name, index)


def test_the_k8s_manifests_run_the_replicas_and_partitions_tested_here() -> None:
    deploy = Path(__file__).parents[2] / "deploy" / "k8s"
    for name in SERVICES:
        documents = yaml.safe_load_all((deploy / f"{name}.yaml").read_text())
        (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
        assert deployment["spec"]["replicas"] == REPLICAS, name
    config = next(yaml.safe_load_all((deploy / "config.yaml").read_text()))
    assert int(config["data"]["SMSFLOW_PARTITIONS"]) == PARTITIONS
