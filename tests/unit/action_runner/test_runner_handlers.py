"""The runner's handlers on the record pipeline, broker-free (memory stores, an in-memory
producer): a batch is decided in order in memory, fails closed on consent it could not
prove current, and what a STOP does reaches the ledgers and the sends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from schemas.contacts import ContactChange
from schemas.sms import InboundSms
from services.action_runner.answer_replies import AnswerReplies
from services.action_runner.apply_consent import ApplyConsentChanges
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.index_numbers import IndexContactNumbers, UpdateNumberIndex
from services.action_runner.internal import PhoneIndexUpdate, WideConsentCommand
from services.action_runner.metrics import Metrics
from services.action_runner.parts import Parts
from services.action_runner.run_actions import RunActions
from services.action_runner.settings import RunnerSettings
from services.action_runner.stores import ANSWERED, CONSENT, NUMBERS, SENT_SMS, STORES
from services.common.codec import encode
from tests.unit.action_runner.defs import NOON, Defs, command
from tests.unit.action_runner.test_runner_consent import SUBSCRIBE as SUBSCRIPTION
from tests.unit.pipeline_fakes import MemoryPipeline, record

PREFIX = "u."
ACTIONS, INBOUND, CONSENT_TOPIC = "u.actions", "u.sms-inbound", "u.action-runner-consent-commands"
NUMBER = "+358401234567"
SUBSCRIBE = {"type": "manage_subscription", **SUBSCRIPTION}


class Runner:
    """The runner's handlers wired to a MemoryPipeline, with the barrier's answers given."""

    def __init__(self, *, opt_outs_current: bool = True, consent_end: int = 0) -> None:
        settings = RunnerSettings(topic_prefix=PREFIX)
        self.parts = Parts(settings, Defs(), lambda: NOON, Metrics(), f"{PREFIX}action-runner")  # type: ignore[arg-type]
        self.opted_out: set[str] = set()

        async def end_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: consent_end if tp.topic == CONSENT_TOPIC else 0 for tp in tps}

        async def current() -> bool:
            return opt_outs_current

        self.barrier = ConsentBarrier(end_offsets, timeout_s=0.05)
        for p in range(3):
            self.barrier.start(TopicPartition(CONSENT_TOPIC, p), 0)
            self.barrier.start(TopicPartition(INBOUND, p), 0)
        self.run_actions = RunActions(
            self.parts,
            self.barrier,
            current,
            lambda account, number: number in self.opted_out,
            partitions=3,
        )
        handlers = [
            self.run_actions,
            ApplyConsentChanges(self.parts, self.barrier),
            AnswerReplies(self.parts, self.barrier),
        ]
        by_topic: dict[str, Any] = {h.topic: h for h in handlers}  # type: ignore[attr-defined]
        by_topic["u.contact-changes"] = IndexContactNumbers(self.parts)
        by_topic["u.action-runner-phone-index"] = UpdateNumberIndex(self.parts)
        self.memory = MemoryPipeline(by_topic, {s: f"{s}-state" for s in STORES})

    async def actions(self, *commands: Any, partition: int = 0) -> list[dict[str, Any]]:
        await self.feed(ACTIONS, (encode(c) for c in commands), partition)
        return [s.json for s in self.memory.producer.on("u.action-results")]

    async def feed(self, topic: str, values: Iterable[bytes], partition: int = 0) -> None:
        records = [
            record(topic, offset, value, partition=partition) for offset, value in enumerate(values)
        ]
        await self.memory.run(records)

    def on(self, topic: str) -> list[Any]:
        return [s.json for s in self.memory.producer.on(topic)]


@pytest.mark.asyncio
async def test_a_send_decided_after_a_subscription_in_the_same_batch_sees_it() -> None:
    runner = Runner()
    subscribe, send = command(SUBSCRIBE, step=0), command()
    results = await runner.actions(subscribe, send, send)  # the last: a redelivered copy
    assert [(r["action_id"], r["outcome"]) for r in results] == [
        (subscribe.action_id, "done"),
        (send.action_id, "done"),
        (send.action_id, "done"),  # the copy runs nothing and is answered again
    ]
    assert results[2] == results[1]  # the same result, event id included
    [request] = runner.on("u.sms-requests")
    assert request["to"] == NUMBER
    memory = runner.memory
    assert memory.stored(CONSENT, "acme:1001")["subscriptions"]["sms-marketing"]["status"] == (
        "SUBSCRIBED"
    )
    assert memory.stored(ANSWERED, send.action_id)["outcome"] == "done"
    assert [s["idempotency_key"] for s in memory.stored(SENT_SMS, "acme:1001")["sent"]] == [
        request["idempotency_key"]
    ]
    # Outputs of the batch, then its state: no changelog record before the last output.
    topics = [s.topic for s in memory.producer.sent]
    last_output = max(i for i, t in enumerate(topics) if not t.endswith("-state"))
    assert all(t.endswith("-state") for t in topics[last_output + 1 :])
    assert not any(t.endswith("-state") for t in topics[: last_output + 1])


@pytest.mark.asyncio
async def test_a_command_sent_again_later_is_answered_again_and_runs_nothing() -> None:
    # The enroller re-sends a command when a crash kept it from storing that it had sent
    # it; the first answer then found nothing pending, so only a second answer ends the step.
    runner = Runner()
    subscribe, send = command(SUBSCRIBE, step=0), command()
    first = await runner.actions(subscribe, send)
    again = await runner.actions(send)
    assert again[len(first) :] == [first[-1]]
    assert len(runner.on("u.sms-requests")) == 1


@pytest.mark.asyncio
async def test_a_send_whose_opt_outs_are_unproven_is_deferred_not_decided() -> None:
    runner = Runner(opt_outs_current=False)
    await runner.actions(command(SUBSCRIBE, step=0))
    [_, deferred] = await runner.actions(command())
    assert (deferred["outcome"], deferred["reason"]) == ("deferred", "consent_pending")
    assert deferred["retry_at"] is not None
    assert runner.on("u.sms-requests") == []


@pytest.mark.asyncio
async def test_a_subscription_whose_ledger_is_behind_waits_and_is_never_refused() -> None:
    runner = Runner(consent_end=1)  # a consent command this instance has not applied
    # The partition stops at the subscription: nothing is decided, nothing is lost.
    assert await runner.actions(command(SUBSCRIBE, step=0)) == []
    assert runner.on("u.subscription-changes") == []


@pytest.mark.asyncio
async def test_an_unreadable_command_fails_its_step_and_is_dead_lettered() -> None:
    runner = Runner()
    bad = command().model_dump(mode="json", by_alias=True)
    bad["action"] = {"type": "send_fax"}
    await runner.feed(ACTIONS, [json.dumps(bad).encode()])
    [result] = runner.on("u.action-results")
    assert result["outcome"] == "failed"
    assert result["reason"].startswith("invalid_command")
    [letter] = runner.on("dead-letters")
    assert letter["topic"] == ACTIONS


@pytest.mark.asyncio
async def test_a_stop_opts_the_number_out_and_every_contact_that_holds_it() -> None:
    runner = Runner()
    await runner.actions(command(SUBSCRIBE, step=0))
    change = ContactChange(account_id="acme", contact_id="1001", properties={"mobilephone": NUMBER})
    await runner.feed("u.contact-changes", [encode(change)])
    [update] = runner.on("u.action-runner-phone-index")
    assert (update["phone"], update["present"]) == (NUMBER, True)
    await runner.feed(
        "u.action-runner-phone-index", [encode(PhoneIndexUpdate.model_validate(update))]
    )
    stop = InboundSms.model_validate(
        {"account_id": "acme", "from": NUMBER, "to": "+358451234567", "body": "STOP"}
    )
    await runner.feed(INBOUND, [encode(stop)])
    [opt_out] = runner.on("u.opt-outs")
    assert (opt_out["number"], opt_out["opted_out"]) == (NUMBER, True)
    assert runner.memory.stored(NUMBERS, f"acme:{NUMBER}")["opted_out"] is True
    [wide] = runner.on("u.action-runner-consent-commands")
    assert (wide["contact_id"], wide["status"]) == ("1001", "UNSUBSCRIBED")
    await runner.feed(CONSENT_TOPIC, [encode(WideConsentCommand.model_validate(wide))])
    [_, audit] = runner.on("u.subscription-changes")
    assert (audit["contact_id"], audit["status"], audit["source_id"]) == (
        "1001",
        "UNSUBSCRIBED",
        "STOP",
    )
    assert runner.memory.stored(CONSENT, "acme:1001")["wide"]["status"] == "UNSUBSCRIBED"
    # The send gate reads the number's opt-out (the opt-outs view, here a set).
    runner.opted_out.add(NUMBER)
    results = await runner.actions(command())
    assert results[-1]["reason"] == "opted_out"


@pytest.mark.asyncio
async def test_a_reply_that_fails_to_apply_is_held_not_skipped() -> None:
    runner = Runner()
    runner.parts.settings.inject_reply_failures = 1
    replies = AnswerReplies(runner.parts, runner.barrier)
    runner.memory.pipeline.handlers[INBOUND] = replies
    stop = InboundSms.model_validate(
        {"account_id": "acme", "from": NUMBER, "to": "+358451234567", "body": "STOP"}
    )
    await runner.feed(INBOUND, [encode(stop)])
    assert runner.on("u.opt-outs") == []
    assert runner.on("dead-letters") == []
    await runner.feed(INBOUND, [encode(stop)])  # retried
    assert len(runner.on("u.opt-outs")) == 1


@pytest.mark.asyncio
async def test_the_opt_outs_view_is_checked_only_after_pending_replies_are_applied() -> None:
    """A STOP applied during the barrier's wait writes its opt-out: the view's check must
    start after that, or it could prove a view that misses it."""
    order: list[str] = []

    async def end_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 1)  # one reply not yet applied on every partition

    async def opt_outs_current() -> bool:
        order.append("opt-outs view checked")
        return True

    parts = Runner().parts
    barrier = ConsentBarrier(end_offsets, timeout_s=5)
    for p in range(3):
        barrier.start(TopicPartition(INBOUND, p), 0)
    handler = RunActions(parts, barrier, opt_outs_current, lambda a, n: False, partitions=3)
    preparing = asyncio.create_task(handler.prepare(0, [command()]))
    await asyncio.sleep(0.05)
    assert order == []  # still waiting for the reply
    order.append("reply applied")
    for p in range(3):
        barrier.applied(TopicPartition(INBOUND, p), 1)
    proven = await asyncio.wait_for(preparing, 1)
    assert order == ["reply applied", "opt-outs view checked"]
    assert proven.unproven == set()
