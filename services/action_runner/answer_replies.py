"""Answers replies from phones (STOP, START, HELP) and gateway opt-outs, per number.
Blocking: a reply that fails to apply holds its partition and is retried, never skipped, and
sends to numbers on that partition wait for it (the barrier) or are deferred."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.structs import TopicPartition

from schemas.sms import InboundSms, ProviderOptOut
from schemas.topics import SMS_INBOUND
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.emissions import emit_all
from services.action_runner.inbound import decode_inbound, handle_inbound
from services.action_runner.parts import Parts
from services.action_runner.phone_index import NumberEntry
from services.action_runner.stores import NUMBERS, dump
from services.common.records import Batch, Handled, Handler


class AnswerReplies(Handler):
    name = "answer_replies"
    stores = (NUMBERS,)
    blocking = True

    def __init__(self, parts: Parts, barrier: ConsentBarrier) -> None:
        self.parts = parts
        self.barrier = barrier
        self.topic = parts.topic(SMS_INBOUND)
        self.failures_left = parts.settings.inject_reply_failures

    def decode(self, record: Any) -> InboundSms | ProviderOptOut:
        return decode_inbound(record.value)

    async def prepare(self, partition: int, items: Sequence[Any]) -> None:
        catalog = self.parts.catalog
        await self.parts.await_known(lambda: all(catalog.account(e.account_id) for e in items))

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        event: InboundSms | ProviderOptOut = item
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("injected failure (inject_reply_failures)")
        raw = batch.get(NUMBERS, event.key)
        entry = None if raw is None else NumberEntry.model_validate(raw)
        account = self.parts.catalog.account(event.account_id)
        handled = handle_inbound(event, entry, account, self.parts.clock())
        # The number's opt-out is sent before the entry is stored: from then on the gates
        # and the sender see it.
        emit_all(batch, self.parts.topic, handled.effects.emissions)
        if handled.entry is not None:
            batch.put(NUMBERS, event.key, dump(handled.entry))
        self.parts.metrics.inbound.labels(handled.kind).inc()
        return Handled(
            "inbound_handled",
            {
                "account_id": event.account_id,
                "phone": event.key,
                "kind": handled.kind,
                "contacts": handled.contacts,
            },
        )

    def done(self, partition: int, next_offset: int) -> None:
        self.barrier.applied(TopicPartition(self.topic, partition), next_offset)
