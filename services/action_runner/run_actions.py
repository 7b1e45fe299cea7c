"""Runs action commands, a batch at a time.

Before a batch is decided (``prepare``): the definitions it names are awaited briefly, and
the consent it reads must be current: a subscription change waits until the contact
partition's wide consent commands are applied, a send until its number's replies are
applied and the ``opt-outs`` view has read everything written so far (one barrier per
batch). Whatever could not be proved current fails closed: a subscription change stops its
partition until it can be decided, a send is deferred.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka.structs import TopicPartition

from schemas.actions import ActionCommand
from schemas.definitions import ManageSubscription, SendSms
from schemas.sms import number_key
from schemas.topics import ACTION_RESULTS, ACTIONS, SMS_INBOUND
from services.action_runner import answers
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.commands import (
    CONSENT_PENDING,
    defer_send,
    handle_command,
    invalid_command_result,
)
from services.action_runner.commands import (
    Handled as CommandHandled,
)
from services.action_runner.consent import apply
from services.action_runner.emissions import Emission, emit_all
from services.action_runner.frequency import SentLog
from services.action_runner.internal import CONSENT_COMMANDS
from services.action_runner.metrics import reason_label
from services.action_runner.parts import Parts
from services.action_runner.stores import ANSWERED, CONSENT, SENT_SMS, dump, ledger
from services.common.codec import decode
from services.common.dead_letters import REPLAYED_FROM_HEADER, header_value
from services.common.errors import TransientError
from services.common.number_opt_outs import partition_of
from services.common.phones import resolve_recipient
from services.common.records import Batch, Handled, Handler

OptOutsCurrent = Callable[[], Awaitable[bool]]
OptedOut = Callable[[str, str], bool]


@dataclass
class Proven:
    """What the barrier proved current for one batch."""

    now: datetime
    consent: bool = True  # the contact partition's wide consent commands are applied
    # Sends whose number's opt-outs could not be proved current, by action id.
    unproven: set[str] = field(default_factory=set)


class RunActions(Handler):
    name = "run_actions"
    stores = (CONSENT, ANSWERED, SENT_SMS)

    def __init__(
        self,
        parts: Parts,
        barrier: ConsentBarrier,
        opt_outs_current: OptOutsCurrent,
        opted_out: OptedOut,
        partitions: int,
    ) -> None:
        self.parts = parts
        self.barrier = barrier
        self.opt_outs_current = opt_outs_current
        self.opted_out = opted_out
        self.partitions = partitions
        self.topic = parts.topic(ACTIONS)
        self.consent_topic = parts.topic(CONSENT_COMMANDS)
        self.replies_topic = parts.topic(SMS_INBOUND)
        self.link_secret = parts.settings.link_secret.get_secret_value().encode()

    def decode(self, record: Any) -> ActionCommand:
        return decode(ActionCommand, record.value)

    def invalid(self, record: Any, reason: str, batch: Batch) -> None:
        result = invalid_command_result(record.value, reason, self.parts.clock())
        if result is not None:  # e.g. an unknown action type: the enrollment goes on
            batch.emit(self.parts.topic(ACTION_RESULTS), result.key, result)
            self.parts.metrics.actions.labels("invalid", result.outcome.value, "invalid").inc()

    async def prepare(self, partition: int, items: Sequence[Any]) -> Proven:
        commands: Sequence[ActionCommand] = items
        await self.parts.await_known(lambda: all(self._known(c) for c in commands))
        proven = Proven(now=self.parts.clock())
        sends: dict[str, TopicPartition | None] = {}
        for command in commands:
            if isinstance(command.action, SendSms):
                sends[command.action_id] = self._reply_partition(command)
        consent_tp = TopicPartition(self.consent_topic, partition)
        wanted = {tp for tp in sends.values() if tp is not None}
        if any(isinstance(c.action, ManageSubscription) for c in commands):
            wanted.add(consent_tp)
        # In this order: a STOP applied by the first wait writes its opt-out, which the
        # second wait (the opt-outs view reading to its end as of then) must include.
        reached = await self.barrier.caught_up(wanted)
        opt_outs = await self.opt_outs_current() if sends else True
        if consent_tp in wanted and not self._current(consent_tp, reached):
            proven.consent = False
        for action_id, tp in sends.items():
            if not opt_outs or (tp is not None and not self._current(tp, reached)):
                proven.unproven.add(action_id)
        if proven.unproven or not proven.consent:
            self.parts.metrics.barrier_timeouts.inc()
        return proven

    def _current(self, tp: TopicPartition, reached: set[TopicPartition]) -> bool:
        return tp in reached or not self.barrier.reads(tp)

    def _reply_partition(self, command: ActionCommand) -> TopicPartition | None:
        """The ``sms-inbound`` partition of the send's recipient number, if it has one."""
        account = self.parts.catalog.account(command.account_id)
        if account is None:
            return None
        recipient = resolve_recipient(command.contact, account.spec.default_region)
        if recipient.e164 is None:
            return None
        key = number_key(command.account_id, recipient.e164).encode()
        return TopicPartition(self.replies_topic, partition_of(key, self.partitions))

    def _known(self, command: ActionCommand) -> bool:
        catalog = self.parts.catalog
        message_id = getattr(command.action, "message", None)
        return (
            catalog.account(command.account_id) is not None
            and catalog.workflow(command.account_id, command.workflow_id) is not None
            and (message_id is None or catalog.message(command.account_id, message_id) is not None)
        )

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        command: ActionCommand = item
        proven: Proven = context
        metrics = self.parts.metrics
        fields: dict[str, Any] = {
            "action_id": command.action_id,
            "action": command.action.type,
            "attempt": command.attempt,
            "account_id": command.account_id,
            "contact_id": command.contact_id,
            "workflow_id": command.workflow_id,
        }
        prior = batch.get(ANSWERED, command.action_id)
        replayed_from = header_value(record.headers, REPLAYED_FROM_HEADER)
        if prior is not None and not answers.runs(prior, command.attempt, replayed_from):
            metrics.replays.inc()
            again = answers.stored_result(prior)
            if again is not None:
                emit_all(batch, self.parts.topic, [Emission.of(ACTION_RESULTS, again)])
            return Handled("action_replayed", {**fields, "outcome": prior.get("outcome")})
        if prior is not None:  # a replayed dead letter: its cause may be fixed now
            fields["rerun_of"] = replayed_from
        handled = self._decide(command, batch, proven)
        emit_all(batch, self.parts.topic, handled.effects.emissions)
        if handled.effects.dead_letter:
            batch.dead_letter(record, handled.effects.dead_letter)
        if handled.consent_change is not None:
            change = handled.consent_change
            batch.put(CONSENT, command.key, dump(apply(ledger(batch, command.key), change)))
            metrics.consent_changes.labels(change.source.value, change.status.value).inc()
        if handled.sent is not None:
            batch.put(SENT_SMS, command.key, dump(handled.sent))
        result = handled.result
        batch.put(
            ANSWERED,
            command.action_id,
            answers.answer(
                command.attempt, result, bool(handled.effects.dead_letter), replayed_from
            ),
        )
        metrics.actions.labels(
            command.action.type, result.outcome.value, reason_label(result.reason)
        ).inc()
        return Handled(
            "action_handled", {**fields, "outcome": result.outcome.value, "reason": result.reason}
        )

    def _decide(self, command: ActionCommand, batch: Batch, proven: Proven) -> CommandHandled:
        """Runs the action on the consent proved current; fails closed when it is not."""
        action, now, settings = command.action, proven.now, self.parts.settings
        catalog = self.parts.catalog
        if isinstance(action, SendSms):
            if command.action_id in proven.unproven:
                until = now + timedelta(seconds=settings.consent_retry_s)
                return defer_send(command, now, until, CONSENT_PENDING)
            sent = batch.get(SENT_SMS, command.key)
            return handle_command(
                command,
                catalog,
                ledger(batch, command.key),
                now,
                settings.max_segments,
                opted_out=self.opted_out,
                sent=None if sent is None else SentLog.model_validate(sent),
                link_secret=self.link_secret,
            )
        if isinstance(action, ManageSubscription):
            if not proven.consent:
                # Never decide a subscription on a ledger that may miss a STOP, and never
                # drop it either (a broker outage is no reason to lose a contact's SMS):
                # the partition stops here and the batch is tried again.
                raise TransientError("consent ledger not proven current")
            return handle_command(
                command, catalog, ledger(batch, command.key), now, settings.max_segments
            )
        return handle_command(command, catalog, None, now, settings.max_segments)
