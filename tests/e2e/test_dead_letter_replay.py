"""Dead letters of a running stack, listed and replayed with the CLI.

A workflow of an account that is not defined yet: the action runner dead-letters the action
it cannot run. Once the account is applied, ``smsflow dead-letters replay`` publishes the
original command again, with its provenance header, once; a second run publishes nothing,
and the replayed record does not come back as a new dead letter.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from schemas.definitions import DefinitionApplied
from schemas.topics import ACTIONS, DEFINITIONS
from services.common.dead_letters import REPLAYED_FROM_HEADER
from services.control.topic_reader import read_topics
from tests.e2e.definitions import account
from tests.e2e.stack import Stack
from tests.integration.control.dashboard_process import get_json
from tests.support import produce

pytestmark = pytest.mark.e2e


def workflow(account_id: str) -> dict[str, object]:
    return yaml.safe_load(
        f"""
apiVersion: smsflow/v1
kind: Workflow
metadata: {{id: marketing-flag, account: {account_id}}}
spec:
  enabled: true
  enrollment:
    criteria: [[{{property: lifecyclestage, operator: eq, value: customer}}]]
  actions:
    - {{type: set_marketing_contact_status, marketing: true}}
"""
    )


def letters(stack: Stack, *args: str) -> list[dict[str, object]]:
    result = stack.smsflow("dead-letters", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_dead_letter_is_replayed_once_after_the_cause_is_fixed(
    stack: Stack, tmp_path: Path
) -> None:
    account_id = f"late{uuid.uuid4().hex[:6]}"
    # The workflow arrives before its account (e.g. the account's apply was rolled back).
    produce(
        stack.settings,
        DEFINITIONS,
        [DefinitionApplied.model_validate({"document": workflow(account_id)})],
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
    dashboard = f"http://127.0.0.1:{stack.env['SMSFLOW_DASHBOARD_PORT']}/api/state"
    counts = stack.wait(lambda: get_json(dashboard)["dead_letters"], "the dashboard's counts")
    assert counts.get("action-runner actions", 0) >= 1
