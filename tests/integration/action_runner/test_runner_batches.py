"""Batches on the real broker: a kill -9 in the middle of a batch (outputs acknowledged,
state and offsets not yet written), and a STOP racing a batch of sends to its number."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.actions import ActionOutcome
from schemas.sms import InboundSms
from schemas.topics import ACTIONS, SMS_INBOUND
from services.common.codec import encode
from tests.documents import SUBSCRIBE
from tests.integration.action_runner.harness import RunnerStack, command, contact, send
from tests.integration.action_runner.test_runner_flow import started
from tests.integration.action_runner.test_runner_restarts import assert_identical_copies

pytestmark = pytest.mark.integration


@pytest.fixture
def crashing(kafka_bootstrap: str, tmp_path: Path) -> Iterator[RunnerStack]:
    # The second batch of actions dies with its outputs out and nothing else written.
    with started(
        kafka_bootstrap,
        tmp_path,
        clean_exit=False,
        SMSFLOW_ACTION_RUNNER_SESSION_TIMEOUT_S="6",
        SMSFLOW_INJECT_CRASH_AFTER_OUTPUTS="2",
    ) as stack:
        yield stack


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[RunnerStack]:
    # The STOP fails to apply twice (retried 0.1 s, then 0.5 s later): a window in which a
    # send decided without waiting for it would go out.
    with started(kafka_bootstrap, tmp_path, SMSFLOW_INJECT_REPLY_FAILURES="2") as stack:
        yield stack


def test_a_kill_9_in_the_middle_of_a_batch_loses_no_sms_and_repeats_none(
    crashing: RunnerStack,
) -> None:
    stack = crashing
    contacts = [f"b-{i:03d}" for i in range(40)]
    subscriptions = [command(c, SUBSCRIBE, step=0) for c in contacts]
    for cmd in subscriptions:
        stack.producer.command(cmd)
    sends = [send(c) for c in contacts]
    for cmd in sends:
        stack.producer.command(cmd)
    process = stack.runner.process
    assert process is not None
    process.wait(timeout=60)
    assert process.returncode == -9, stack.runner.log()
    assert "crash_injected" in stack.runner.log(tail=None)
    # The crashed batch's outputs were acknowledged before the kill: they are on the topics.
    before = len(stack.results.poll())
    assert before > 0

    stack.runner.env.pop("SMSFLOW_INJECT_CRASH_AFTER_OUTPUTS")
    stack.runner.start()
    for cmd in [*subscriptions, *sends]:
        assert stack.result(cmd, timeout_s=60).outcome is ActionOutcome.DONE
    counts = assert_identical_copies(stack, "b-")  # copies re-emitted, never re-decided
    assert len(counts) == len(contacts)  # every SMS requested, each under one key
    requested = Counter(r.contact_id for r in stack.requests.poll() if r.workflow_id)
    assert set(requested) == set(contacts)
    # Replayed: the crashed batch's records (its offsets were never committed).
    assert len(stack.results.poll()) > len(subscriptions) + len(sends)
    # Each action's answer is stored once the replay wrote its state: a copy now is not run.
    stack.producer.command(sends[0])
    stack.run(send(contacts[0], step=4, message="draft-msg"))
    assert len({r.event_id for r in stack.requests_for(contacts[0])}) == 1


def test_no_send_decided_after_a_stop_was_in_sms_inbound_reaches_sms_requests(
    stack: RunnerStack,
) -> None:
    number, props = "+358401130100", contact("040 113 0100")
    assert stack.subscribe("r-stop", props=props).outcome is ActionOutcome.DONE
    before = [send("r-stop", step=10 + i, props=props) for i in range(60)]
    after = [send("r-stop", step=100 + i, props=props) for i in range(60)]
    topic = stack.settings.topic(ACTIONS)
    kafka = stack.producer.producer
    for cmd in before:  # a burst: the runner takes it in batches
        kafka.send(topic, key=cmd.key.encode(), value=encode(cmd))
    kafka.flush()
    stop = InboundSms.model_validate(
        {"account_id": "acme", "from": number, "to": "+358451234567", "body": "STOP"}
    )
    stack.producer.send(SMS_INBOUND, stop)  # returns once the broker acknowledged it
    stop_in_topic = datetime.now(UTC)
    for cmd in after:
        kafka.send(topic, key=cmd.key.encode(), value=encode(cmd))
    kafka.flush()

    results = {c.action_id: stack.result(c, timeout_s=60) for c in (*before, *after)}
    for result in results.values():
        assert (result.outcome, result.reason) in {
            (ActionOutcome.DONE, None),
            (ActionOutcome.SKIPPED, "opted_out"),
        }, result
    # Every send produced after the STOP was acknowledged is skipped, none is requested.
    assert {results[c.action_id].reason for c in after} == {"opted_out"}
    requests = stack.requests_for("r-stop")
    requested = {r.action_id for r in requests}
    assert not requested & {c.action_id for c in after}
    assert requested == {a for a, r in results.items() if r.outcome is ActionOutcome.DONE}
    # And no request was decided (its batch begun) after the STOP was in sms-inbound.
    late = [r for r in requests if r.occurred_at > stop_in_topic]
    assert late == []
    statuses = [s for s in stack.statuses_for("r-stop") if s.reason == "opted_out"]
    assert len(statuses) == len(results) - len(requests)
