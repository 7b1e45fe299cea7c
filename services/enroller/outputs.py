"""The records an engine's effects become, and sending them: all queued, acks awaited once.

Sends are queued without waiting on each one; the caller awaits the broker's acks of the
whole lot once, before it writes any state (outputs before state). A retried delivery sends
again only what was not acknowledged, with the same deterministic ids, so consumers that
de-duplicate see each output once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

import faust

from schemas.topics import ACTIONS, DEAD_LETTERS, ENROLLMENT_EVENTS, SMS_STATUS
from services.common.broker_outage import broker_unavailable
from services.common.codec import encode
from services.common.logging import get_logger

from . import metrics, retries
from .effects import Effects
from .rules import Reason
from .settings import EnrollerSettings

log = get_logger("services.enroller")
Message = tuple[Any, bytes | None, bytes]  # (faust topic, key, value)
RAW: faust.Schema[bytes, bytes] = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)


class Undelivered(Exception):
    """Some messages were refused; ``left`` are the ones still to send."""

    def __init__(self, left: list[Message], error: BaseException) -> None:
        super().__init__(f"{len(left)} not delivered: {error!r}")
        self.left = left
        self.error = error


class OutputTopic:
    """A topic the enroller only writes: straight to the app's producer.

    faust's ``Topic.send`` wraps every message in a pending-message future and a second
    publish step (about half the cost of a send); outputs are raw bytes and need neither.
    ``send`` queues the message and returns its delivery future.
    """

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.name = name

    async def send(self, *, key: bytes | None, value: bytes, force: bool = True) -> Any:
        producer = await self.app.maybe_start_producer()
        return await producer.send(self.name, key, value, None, None, None)


@dataclass
class Outputs:
    """The enroller's output topics (``send`` queues and returns a delivery future)."""

    actions: Any
    events: Any
    results: Any  # branches taken, reported like the runner's results
    statuses: Any  # SMS held by a sending window
    dead_letters: Any

    @classmethod
    def of(cls, app: Any, settings: EnrollerSettings, results_topic: str) -> Outputs:
        def topic(name: str) -> OutputTopic:
            return OutputTopic(app, name)

        return cls(
            actions=topic(settings.topic(ACTIONS)),
            events=topic(settings.topic(ENROLLMENT_EVENTS)),
            results=topic(results_topic),
            statuses=topic(settings.topic(SMS_STATUS)),
            dead_letters=topic(settings.topic(DEAD_LETTERS)),
        )

    def messages(self, key: bytes, effects: Effects) -> list[Message]:
        """What ``effects`` sends, in order (counted in the metrics as it is built)."""
        out: list[Message] = []
        for decision in effects.events:
            metrics.decided(decision.decision.value)
            if decision.reason == Reason.GOAL_MET.value:
                metrics.GOALS_MET.labels(decision.account_id, decision.workflow_id).inc()
            out.append((self.events, key, encode(decision)))
        out += [(self.results, key, encode(result)) for result in effects.results]
        out += [(self.statuses, key, encode(status)) for status in effects.statuses]
        for command in effects.commands:
            metrics.commanded(command.action.type)
            out.append((self.actions, key, encode(command)))
        return out

    async def deliver(self, messages: Sequence[Message]) -> None:
        """Queue every message, then await all acks once, retrying what was refused; raises
        the last error when some are still refused after ``retries.ATTEMPTS``."""
        left = list(messages)
        attempt, waits = 1, 0
        while True:
            try:
                await _deliver_once(left)
                return
            except Undelivered as exc:
                left = exc.left
                if broker_unavailable(exc.error):
                    log.warning("kafka_unavailable_waiting", waits=waits, error=repr(exc.error))
                    await asyncio.sleep(retries.outage_pause(waits))
                    waits += 1
                    continue
                if attempt == retries.ATTEMPTS:
                    raise exc.error from exc
                log.warning(
                    "delivery_retried", attempt=attempt, left=len(left), error=repr(exc.error)
                )
                await asyncio.sleep(retries.PAUSE_S * attempt)
                attempt += 1


async def _deliver_once(messages: list[Message]) -> None:
    queued: list[tuple[Message, Any]] = []
    for number, message in enumerate(messages):
        topic, key, value = message
        try:
            # ``force``: sent now, not attached to the current event (sent at its ack).
            delivery = await topic.send(key=key, value=value, force=True)
        except Exception as exc:
            raise Undelivered([*_unacked(queued), *messages[number:]], exc) from exc
        if isawaitable(delivery):
            queued.append((message, delivery))
    if not queued:
        return
    acks = await asyncio.gather(*(d for _, d in queued), return_exceptions=True)
    refused = [
        (m, a) for (m, _), a in zip(queued, acks, strict=True) if isinstance(a, BaseException)
    ]
    if refused:
        raise Undelivered([m for m, _ in refused], refused[0][1])


def _unacked(queued: list[tuple[Message, Any]]) -> list[Message]:
    """Queued messages not (yet) known to be acknowledged: sent again to be sure."""
    return [m for m, d in queued if not (d.done() and d.exception() is None)]
