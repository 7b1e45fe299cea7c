"""Applies wide consent commands (a number's STOP or START, for each contact that holds it)
to the contacts' ledgers, audit record first. Blocking: a command that fails to apply holds
its partition and is retried, never skipped (fail closed)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import TopicPartition

from schemas.topics import SUBSCRIPTION_CHANGES
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.consent import apply, decide_wide
from services.action_runner.internal import CONSENT_COMMANDS, WideConsentCommand
from services.action_runner.parts import Parts
from services.action_runner.stores import CONSENT, dump, ledger
from services.common.codec import decode
from services.common.idempotency import emission_id
from services.common.records import Batch, Handled, Handler


class ApplyConsentChanges(Handler):
    name = "apply_consent_changes"
    stores = (CONSENT,)
    blocking = True

    def __init__(self, parts: Parts, barrier: ConsentBarrier) -> None:
        self.parts = parts
        self.barrier = barrier
        self.topic = parts.topic(CONSENT_COMMANDS)

    def decode(self, record: Any) -> WideConsentCommand:
        return decode(WideConsentCommand, record.value)

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        command: WideConsentCommand = item
        fields = {"account_id": command.account_id, "contact_id": command.contact_id}
        change = decide_wide(
            ledger(batch, command.key),
            command.status,
            account_id=command.account_id,
            contact_id=command.contact_id,
            source=command.source,
            source_id=command.source_id,
            phone_masked=command.phone_masked,
            event_id=emission_id(command.event_id, "subscription"),
            now=self.parts.clock(),
            provider_message_id=command.provider_message_id,
        )
        if change is None:
            return Handled("consent_unchanged", {**fields, "status": command.status.value})
        # On the audit trail before the ledger: the pipeline sends before it writes state.
        batch.emit(self.parts.topic(SUBSCRIPTION_CHANGES), change.key, change)
        batch.put(CONSENT, command.key, dump(apply(ledger(batch, command.key), change)))
        self.parts.metrics.consent_changes.labels(change.source.value, change.status.value).inc()
        return Handled(
            "consent_changed",
            {**fields, "status": change.status.value, "source": change.source.value},
        )

    def done(self, partition: int, next_offset: int) -> None:
        # Only now may an action waiting for this partition be decided (fail closed).
        self.barrier.applied(TopicPartition(self.topic, partition), next_offset)
