"""Dead letters of a running stack, listed and replayed with the CLI.

A workflow of an account that is not defined yet: the action runner dead-letters the action
it cannot run. Once the account is applied, ``smsflow dead-letters replay`` publishes the
original command again, with its provenance header, once; a second run publishes nothing,
and the replayed record does not come back as a new dead letter. The full cycle: a Send SMS
dead-lettered for its missing account is sent exactly once after the account is applied and
the dead letters are replayed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from schemas.definitions import DefinitionApplied
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import SmsRequest
from schemas.topics import ACTIONS, DEFINITIONS, ENROLLMENT_EVENTS, SMS_REQUESTS
from services.common.dead_letters import REPLAYED_FROM_HEADER
from services.control.kafka import make_producer
from services.control.topic_reader import read_topics
from tests.e2e.definitions import SUBSCRIBE_SMS, account, workflow
from tests.e2e.stack import DevStack
from tests.support import produce, read_models

pytestmark = pytest.mark.e2e


CUSTOMER = "{property: lifecyclestage, operator: eq, value: customer}"


def marketing_flag(account_id: str) -> dict[str, object]:
    actions = "    - {type: set_marketing_contact_status, marketing: true}\n"
    return yaml.safe_load(workflow(account_id, "marketing-flag", CUSTOMER, actions))


def letters(stack: DevStack, *args: str) -> list[dict[str, object]]:
    result = stack.smsflow("dead-letters", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_dead_letter_is_replayed_once_after_the_cause_is_fixed(
    stack: DevStack, tmp_path: Path
) -> None:
    account_id = f"late{uuid.uuid4().hex[:6]}"
    # The workflow arrives before its account (e.g. the account's apply was rolled back).
    produce(
        stack.settings,
        DEFINITIONS,
        [DefinitionApplied.model_validate({"document": marketing_flag(account_id)})],
    )
    stack.emit(account_id, "c1", "lifecyclestage=customer")

    def dead_lettered() -> list[dict[str, object]]:
        return [
            r
            for r in letters(stack, "--service", "action-runner")
            if str(r["key"]).startswith(account_id)
        ]

    (letter,) = stack.wait(dead_lettered, "the runner's dead letter")
    assert letter["source"].startswith(stack.settings.topic(ACTIONS))  # type: ignore[union-attr]
    assert f"unknown account '{account_id}'" in str(letter["reason"])
    assert letter["state"] == "replayable"

    applied = stack.apply(tmp_path, account(account_id).split("---")[0])
    assert applied.returncode == 0, applied.stderr

    dry = stack.smsflow(
        "dead-letters", "replay", "--service", "action-runner", "--since", "1h", "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
    assert f"would replay {letter['dead_letter']}" in " ".join(dry.stdout.split())

    def replayed_commands() -> list[object]:
        records = read_topics(
            stack.settings, [stack.settings.topic(ACTIONS)], key=f"{account_id}:c1"
        )
        return [r for r in records if dict(r.headers).get(REPLAYED_FROM_HEADER)]

    assert replayed_commands() == []  # the dry run published nothing
    first = stack.smsflow("dead-letters", "replay", "--service", "action-runner", "--since", "1h")
    assert first.returncode == 0, first.stderr
    assert "1 replayed" in first.stdout
    (copy,) = replayed_commands()
    assert dict(copy.headers)[REPLAYED_FROM_HEADER] == str(letter["dead_letter"]).encode()  # type: ignore[attr-defined]

    second = stack.smsflow("dead-letters", "replay", "--since", "1h")
    assert second.returncode == 0, second.stderr
    assert len(replayed_commands()) == 1  # each dead letter once, however often it runs
    mine = [r for r in letters(stack) if str(r["key"]).startswith(account_id)]
    assert [r["state"] for r in mine] == ["replayed"]

    # dev up started the dashboard, which counts the dead letter too.
    dashboard = stack.services["dashboard"]
    counts = stack.wait(
        lambda: dashboard.read_json("/api/state")["dead_letters"], "the dashboard's counts"
    )
    assert counts.get("action-runner actions", 0) >= 1


def subscribe_and_send(account_id: str) -> dict[str, object]:
    actions = SUBSCRIBE_SMS + "    - {type: send_sms, message: welcome}\n"
    return yaml.safe_load(workflow(account_id, "welcome-sms", CUSTOMER, actions))


REPLAYED_ACTIONS = "smsflow_action_runner_replayed_actions_total "


def runner_replays(stack: DevStack) -> float:
    """The runner's count of commands answered from its table (copies not run again)."""
    text = stack.services["action-runner"].read("/metrics")
    (line,) = (x for x in text.splitlines() if x.startswith(REPLAYED_ACTIONS))
    return float(line.split()[-1])


def test_a_send_dead_lettered_for_its_missing_account_is_sent_once_after_a_replay(
    stack: DevStack, tmp_path: Path
) -> None:
    account_id = f"miss{uuid.uuid4().hex[:6]}"
    # The message and the workflow arrive, their account not yet (as in a race, or after the
    # account's apply was rolled back): apply would refuse them, so they go to the topic.
    welcome = yaml.safe_load(account(account_id).split("---")[1])
    produce(
        stack.settings,
        DEFINITIONS,
        [
            DefinitionApplied.model_validate({"document": document})
            for document in (welcome, subscribe_and_send(account_id))
        ],
    )
    stack.emit(
        account_id,
        "c1",
        "firstname=Aino",
        "mobilephone=040 339 0001",  # no other test sends to it
        "hs_marketable_status=true",
        "lifecyclestage=customer",
    )

    def mine() -> list[dict[str, object]]:
        return [r for r in letters(stack) if str(r["key"]).startswith(account_id)]

    # (1) Both actions fail for the missing account: dead letters, not a permanent skip.
    dead = stack.wait(lambda: len(mine()) == 2 and mine(), "both actions' dead letters")
    assert {r["service"] for r in dead} == {"action-runner"}
    assert all(f"unknown account '{account_id}'" in str(r["reason"]) for r in dead)
    assert [r["state"] for r in dead] == ["replayable", "replayable"]

    def completed() -> list[EnrollmentEvent]:
        events = read_models(stack.settings, ENROLLMENT_EVENTS, EnrollmentEvent)
        return [
            e
            for e in events
            if e.account_id == account_id and e.decision is EnrollmentDecision.COMPLETED
        ]

    # A failed action moves the enrollment on (HubSpot logs an action error): it ends.
    stack.wait(completed, "the enrollment to end after its failed actions")

    # (2) The account is applied.
    applied = stack.apply(tmp_path, account(account_id).split("---")[0])
    assert applied.returncode == 0, applied.stderr

    # (3) A replay runs both commands again, in order: subscribed, then sent exactly once.
    first = stack.smsflow("dead-letters", "replay", "--service", "action-runner", "--since", "1h")
    assert first.returncode == 0, first.stderr
    said = " ".join(first.stdout.split())
    assert all(f"replay {r['dead_letter']}" in said for r in dead), first.stdout

    def gateway_messages() -> list[dict[str, object]]:
        return [m for m in stack.gateway_messages() if f"({account_id})" in str(m["body"])]

    (sms,) = stack.wait(gateway_messages, "the replayed SMS at the gateway")
    assert sms["to"] == "+358403390001"

    def requests() -> list[SmsRequest]:
        found = read_models(stack.settings, SMS_REQUESTS, SmsRequest)
        return [r for r in found if r.account_id == account_id]

    assert len(requests()) == 1
    assert [r["state"] for r in mine()] == ["replayed", "replayed"]  # no new dead letter

    # A second replay publishes nothing.
    commands = read_topics(stack.settings, [stack.settings.topic(ACTIONS)], key=f"{account_id}:c1")
    copies = [r for r in commands if dict(r.headers).get(REPLAYED_FROM_HEADER)]
    assert len(copies) == 2
    second = stack.smsflow("dead-letters", "replay", "--service", "action-runner", "--since", "1h")
    assert second.returncode == 0, second.stderr
    assert all(f"replay {r['dead_letter']}" not in " ".join(second.stdout.split()) for r in dead)
    again = read_topics(stack.settings, [stack.settings.topic(ACTIONS)], key=f"{account_id}:c1")
    assert len(again) == len(commands)

    # The same replayed Send SMS delivered twice (at-least-once) is not run twice.
    (send,) = (c for c in copies if b'"send_sms"' in (c.value or b""))
    before = runner_replays(stack)
    producer = make_producer(stack.settings)
    try:
        producer.send(
            send.topic,
            key=(send.key or "").encode(),
            value=send.value,
            headers=list(send.headers),
        ).get(timeout=30)
    finally:
        producer.close()
    stack.wait(lambda: runner_replays(stack) > before, "the runner to answer the copy")
    assert len(requests()) == 1
    assert len(gateway_messages()) == 1
