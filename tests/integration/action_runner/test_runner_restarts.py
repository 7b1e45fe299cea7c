"""kill -9 and restart: the ledger, opt-outs and answered actions survive; nothing is lost
and no SMS is requested under two keys; a replayed command repeats only identical events."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.actions import ActionOutcome
from schemas.contacts import ContactChange
from schemas.sms import InboundSms
from schemas.topics import CONTACT_CHANGES, SMS_INBOUND
from tests.documents import SUBSCRIBE
from tests.integration.action_runner.harness import RunnerStack, command, contact, send
from tests.integration.action_runner.test_runner_flow import started

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerStack]:
    data = Path(tmp_path_factory.mktemp("runner"))
    # Killed and restarted on purpose: its exit code says nothing.
    with started(
        kafka_bootstrap, data, clean_exit=False, SMSFLOW_ACTION_RUNNER_SESSION_TIMEOUT_S="6"
    ) as stack:
        yield stack


def assert_identical_copies(stack: RunnerStack, contact_prefix: str) -> dict[str, int]:
    """Every request / result that appears twice is the same event (same id, same content):
    replays re-emit, they never decide anew. Returns idempotency key -> copies."""
    copies: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for request in stack.requests.poll():
        if request.contact_id.startswith(contact_prefix) and request.workflow_id:
            copies[request.idempotency_key].add((request.event_id, request.to, request.body))
            counts[request.idempotency_key] += 1
    assert all(len(variants) == 1 for variants in copies.values()), copies
    results: dict[str, set[str]] = defaultdict(set)
    for result in stack.results.poll():
        if result.contact_id.startswith(contact_prefix):
            results[result.action_id].add(result.event_id)
    assert all(len(ids) == 1 for ids in results.values()), results
    return counts


def test_ledger_opt_outs_and_answers_survive_kill_9(stack: RunnerStack) -> None:
    number = "+358401112001"
    stack.producer.send(
        CONTACT_CHANGES,
        ContactChange(account_id="acme", contact_id="k-stop", properties={"mobilephone": number}),
    )
    stack.subscribe("k-sub")
    stack.subscribe("k-stop", props=contact(number))
    stack.subscribe("k-sent")
    sent = send("k-sent")
    assert stack.run(sent).outcome is ActionOutcome.DONE
    stack.producer.send(
        SMS_INBOUND,
        InboundSms.model_validate(
            {"account_id": "acme", "from": number, "to": "+358451234567", "body": "STOP"}
        ),
    )
    stack.changes.wait(
        lambda cs: [c for c in cs if c.contact_id == "k-stop" and c.wide], what="opt-out"
    )

    stack.runner.kill()
    stack.runner.start()

    started = time.monotonic()
    after = stack.run(send("k-sub"))
    assert after.outcome is ActionOutcome.DONE  # the subscription survived
    assert time.monotonic() - started < 8  # and no consent wait ran into its timeout
    blocked = stack.run(send("k-stop", props=contact(number)))
    assert blocked.reason == "opted_out"  # the STOP survived
    # The command answered before the kill, delivered again: no new decision.
    stack.producer.command(sent)
    stack.run(send("k-sent", step=4, message="draft-msg"))  # same partition: after the replay
    counts = assert_identical_copies(stack, "k-")
    assert len([k for k in counts if k]) == 2  # k-sent and k-sub: one key each
    # A command answered and acknowledged long before the kill is not repeated at all.
    assert counts[stack.requests_for("k-sent")[0].idempotency_key] == 1


def test_kill_9_mid_stream_loses_nothing_and_requests_each_sms_under_one_key(
    stack: RunnerStack,
) -> None:
    contacts = [f"m-{i:03d}" for i in range(60)]
    subscriptions = [command(c, SUBSCRIBE, step=0) for c in contacts]
    for cmd in subscriptions:
        stack.producer.command(cmd)
    for cmd in subscriptions:
        stack.result(cmd)
    sends = [send(c) for c in contacts]
    for cmd in sends:
        stack.producer.command(cmd)
    stack.results.wait(
        lambda rs: len({r.action_id for r in rs if r.contact_id.startswith("m-")}) >= 75,
        what="some sends handled",
    )
    stack.runner.kill()
    stack.runner.start()
    for cmd in sends:
        assert stack.result(cmd, timeout_s=60).outcome is ActionOutcome.DONE
    counts = assert_identical_copies(stack, "m-")
    assert len(counts) == len(contacts)
    requested = {r.contact_id for r in stack.requests.poll() if r.contact_id.startswith("m-")}
    assert requested == set(contacts)
