"""Action runner figures: send-gate decisions in the pure core, and actions through the
runner process on the real broker (printed beside the raw Kafka baseline by ``make bench``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.actions import ActionCommand, ActionResult
from schemas.definitions import Account, DefinitionApplied, SmsMessage, Workflow
from schemas.enrollment import action_id, enrollment_id
from schemas.subscriptions import ConsentSource, LegalBasis, SubscriptionChange, SubscriptionStatus
from schemas.topics import ACTION_RESULTS, ACTIONS, DEFINITIONS
from services.action_runner import consent
from services.action_runner.gates import Verdict, decide_send
from services.common.codec import decode, encode
from services.common.phones import parse_number
from services.common.settings import KafkaSettings
from services.control.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
NOON = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

ACCOUNT: dict[str, Any] = {
    "apiVersion": "smsflow/v1",
    "kind": "Account",
    "metadata": {"id": "acme"},
    "spec": {
        "sms_access": True,
        "sender": "+358451234567",
        "default_region": "FI",
        "time_zone": "Europe/Helsinki",
        "quiet_hours": {"start": "20:00", "end": "08:00"},
        "subscription_types": [{"id": "sms-marketing", "name": "Marketing SMS"}],
        "opt_out_text": "Reply STOP to opt out",
    },
}
MESSAGES = [
    {
        "apiVersion": "smsflow/v1",
        "kind": "SmsMessage",
        "metadata": {"id": mid, "account": "acme"},
        "spec": {
            "name": mid,
            "body": body,
            "subscription_type": "sms-marketing",
            "delivery": "workflow",
            "state": "published",
        },
    }
    for mid, body in [
        ("welcome", "Hei {{ contact.firstname | default('there') }}! Tervetuloa."),
        (
            "offer",
            "{{ contact.firstname | default('Hi') }}, your {{ contact.tier | default('member')"
            " }} offer: 20% off this week at acme.example/deals. Show this SMS in store.",
        ),
        ("ru", "Привет, {{ contact.firstname | default('друг') }}! Скидка 20% на этой неделе."),
    ]
]
WORKFLOW = {
    "apiVersion": "smsflow/v1",
    "kind": "Workflow",
    "metadata": {"id": "welcome-flow", "account": "acme"},
    "spec": {"enabled": True, "actions": [{"type": "send_sms", "message": "welcome"}]},
}


def _contacts(n: int) -> list[dict[str, Any]]:
    """A mix: national and E.164 numbers, some missing names, some non-marketing."""
    contacts = []
    for i in range(n):
        mobile = f"040 {i // 10000 % 1000:03d} {i % 10000:04d}" if i % 3 else f"+35850{i:07d}"
        contacts.append(
            {
                "firstname": None if i % 7 == 0 else f"Name{i}",
                "mobilephone": mobile if i % 11 else None,
                "phone": f"09 {i % 10000:04d} {i % 1000:03d}" if i % 11 == 0 else None,
                "hs_marketable_status": "false" if i % 13 == 0 else "true",
                "tier": "gold" if i % 2 else None,
            }
        )
    return contacts


def gate_decisions(n: int = 40_000, population: int = 4_000) -> dict[str, float]:
    """Decisions per second, pure core: every gate, rendering, segments and quiet hours."""
    account = Account.model_validate(ACCOUNT)
    messages = [SmsMessage.model_validate(m) for m in MESSAGES]
    workflow = Workflow.model_validate(WORKFLOW)
    subscribed = consent.apply(
        None,
        SubscriptionChange(
            account_id="acme",
            contact_id="1",
            subscription_type="sms-marketing",
            status=SubscriptionStatus.SUBSCRIBED,
            legal_basis=LegalBasis.CONSENT_WITH_NOTICE,
            legal_basis_explanation="bench",
            source=ConsentSource.WORKFLOW,
        ),
    )
    contacts = _contacts(population)

    def run(count: int, people: list[dict[str, Any]]) -> tuple[float, int]:
        sends = 0
        started = time.perf_counter()
        for i in range(count):
            decision = decide_send(
                workflow=workflow,
                account=account,
                message=messages[i % len(messages)],
                contact=people[i % len(people)],
                consent=subscribed,
                now=NOON,
            )
            sends += decision.verdict is Verdict.SEND
        return count / (time.perf_counter() - started), sends

    parse_number.cache_clear()
    cold, _ = run(population, contacts)  # every number parsed for the first time
    warm, sends = run(n, contacts)  # contacts messaged again (re-sends, later steps)
    assert sends > n // 2, "the bench mix should mostly send"
    return {"gate_decisions_cold_per_s": cold, "gate_decisions_per_s": warm}


def _command(contact_id: str, action: dict[str, Any], step: int) -> ActionCommand:
    enrollment = enrollment_id("acme", "welcome-flow", contact_id, 1)
    return ActionCommand.model_validate(
        {
            "action_id": action_id(enrollment, step),
            "account_id": "acme",
            "contact_id": contact_id,
            "workflow_id": "welcome-flow",
            "enrollment_id": enrollment,
            "step": step,
            "action": action,
            "contact": {
                "firstname": "Aino",
                "mobilephone": "040 123 4567",
                "hs_marketable_status": "true",
            },
        }
    )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runner_actions(
    bootstrap: str, contacts: int = 2500, budget_s: float = 60.0
) -> dict[str, float]:
    """Actions per second through the runner process: a subscribe then a send per contact,
    all produced at once, timed from the first produce to the last result; and the runner's
    CPU per action over the same span."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    from services.control.kafka import create_topics

    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    # No quiet hours here: the figure is about throughput whatever the time of day.
    account = {**ACCOUNT, "spec": {**ACCOUNT["spec"], "quiet_hours": None}}
    for doc in (account, *MESSAGES, WORKFLOW):
        event = DefinitionApplied.model_validate({"document": doc})
        producer.send(settings.topic(DEFINITIONS), key=event.key.encode(), value=encode(event))
    producer.flush()
    port = free_port()
    data = tempfile.mkdtemp(prefix="bench-runner-")
    env = {
        **os.environ,
        "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SMSFLOW_TOPIC_PREFIX": prefix,
        "SMSFLOW_ACTION_RUNNER_PORT": str(port),
        "SMSFLOW_LINK_SECRET": "link-secret-of-the-tests-0123456789",
        "SMSFLOW_DATA_DIR": data,
        "SMSFLOW_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.action_runner"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        _wait_healthy(port, process)
        topic = settings.topic(ACTION_RESULTS)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)
        subscribe = {
            "type": "manage_subscription",
            "subscription_type": "sms-marketing",
            "status": "subscribed",
            "legal_basis": "CONSENT_WITH_NOTICE",
            "legal_basis_explanation": "bench",
        }
        commands = [_command(f"b{i}", subscribe, 0) for i in range(contacts)]
        commands += [
            _command(f"b{i}", {"type": "send_sms", "message": "welcome"}, 3)
            for i in range(contacts)
        ]
        cpu_before = _cpu_s(process.pid)
        started = time.perf_counter()
        for cmd in commands:
            producer.send(settings.topic(ACTIONS), key=cmd.key.encode(), value=encode(cmd))
        producer.flush()
        seen = done = 0
        last = started
        deadline = started + budget_s
        while seen < len(commands) and time.perf_counter() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    result = decode(ActionResult, record.value)
                    seen += 1
                    done += result.outcome.value == "done"
                    last = time.perf_counter()
        elapsed = last - started
        cpu = _cpu_s(process.pid) - cpu_before
        return {
            "runner_actions_per_s": seen / elapsed if elapsed else 0.0,
            "runner_actions_done_fraction": done / len(commands),
            "runner_cpu_ms_per_action": 1000 * cpu / seen if seen else 0.0,
        }
    finally:
        consumer.close()
        producer.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
        finally:
            admin.close()


def _wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"action runner exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("action runner not healthy")


def run(bootstrap: str) -> dict[str, float]:
    return {**gate_decisions(), **runner_actions(bootstrap)}


if __name__ == "__main__":
    from bench.kafka_baseline import measure

    server = os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for name, value in {**measure(server, 20_000), **run(server)}.items():
        print(f"{name:<40} {value:>14,.1f}")
