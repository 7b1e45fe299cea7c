"""Handling a batch of records from ``contact-changes`` and ``action-results``.

1. every record is decided in order, in memory: a contact's later records see the state its
   earlier ones left (the batch keeps each touched contact's latest encoded state);
2. all outputs (and dead letters of poison records) are queued, their acks awaited once;
3. then each touched contact is written once.

The batch holds every key it touches (``KeyGuard``) from before it reads until after it
writes, so the timer never reads a state the batch is about to replace. Offsets are
committed by faust after the batch returns, so a crash anywhere in it replays the batch;
the deterministic ids of its outputs let consumers drop the repeats.

A record that can never be applied, or whose deciding raises, is dead-lettered and the rest
of the batch goes on with its contact's state as it was before it. When the outputs cannot
be delivered even after retries, the batch is handled again one record at a time, so only
a record whose own outputs keep failing is dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from faust.types import EventT

from schemas.contacts import ContactChange
from services.common.codec import DecodeError, encode
from services.common.dead_letters import dead_letter_of
from services.common.logging import get_logger

from . import metrics
from .contacts import Contacts, log_handled
from .engine import InvalidRecord
from .inbound import decode_inbound
from .outputs import Message
from .state import decode_state, encode_state

log = get_logger("services.enroller")


class Batch:
    """What deciding a batch left: outputs to send, then states to write."""

    def __init__(self, contacts: Contacts) -> None:
        self.contacts = contacts
        self.messages: list[Message] = []
        # key -> (partition, encoded state, next due): the latest state of each touched contact
        self.states: dict[str, tuple[int, bytes, float | None]] = {}
        self.handled: dict[str, int] = {}  # short topic -> records applied
        self.lines: list[tuple[str, Any, dict[str, Any]]] = []  # logged once delivered
        self.parked: list[tuple[EventT[bytes], str, str]] = []  # dead-lettered: reason, error

    def raw(self, key: str) -> bytes | None:
        held = self.states.get(key)
        return held[1] if held is not None else self.contacts.raw(key)


class RecordHandler:
    def __init__(self, contacts: Contacts, expected: dict[str, str]) -> None:
        """``expected`` maps each source topic to the event type it carries."""
        self.contacts = contacts
        self.outputs = contacts.outputs
        self.expected = expected
        self.finished = 0  # records whose batch is done, dead letters included

    async def handle(self, events: Sequence[EventT[bytes]]) -> None:
        """Never raises: faust would skip the records silently."""
        try:
            await self._handle(events)
        finally:
            self.finished += len(events)

    async def _handle(self, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        guard = self.contacts.guard
        keys = {_key(event) or "" for event in events}
        await guard.acquire(keys)
        try:
            batch = self.decide(events, time.time())
            await self.outputs.deliver(batch.messages)
            for key, (partition, raw, due) in batch.states.items():
                self.contacts.write(key, raw, due, partition)
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
        finally:
            guard.release(keys)
        if failure is not None:
            await self._failed(events, failure)
            return
        for topic, count in batch.handled.items():
            metrics.record_outcome(topic, "handled").inc(count)
        for handled, engine, context in batch.lines:
            log_handled(handled, engine, **context)
        for event, reason, error_type in batch.parked:
            self._parked(event, reason, error_type)
        share = (time.perf_counter() - started) / len(events)
        for _ in events:
            metrics.HANDLE_SECONDS.observe(share)

    async def _failed(self, events: Sequence[EventT[bytes]], error: Exception) -> None:
        if len(events) > 1:
            log.warning("batch_split", records=len(events), error=repr(error))
            for event in events:
                await self._handle([event])
            return
        log.error("record_failed", exc_info=error, **_context(events[0]))
        event, reason = events[0], f"unexpected {type(error).__name__}: {error}"
        try:
            await self.outputs.deliver([self._letter(event, reason, error)])
        except Exception:
            log.exception("dead_letter_failed", **_context(event))
        self._parked(event, reason, type(error).__name__)

    def decide(self, events: Sequence[EventT[bytes]], now: float) -> Batch:
        """Every record in order, in memory; poison records become dead letters."""
        batch = Batch(self.contacts)
        for event in events:
            message = event.message
            key = _key(event)
            try:
                record = decode_inbound(message.topic, message.value, self.expected)
                if key is None or key != record.key:
                    raise InvalidRecord(f"record key {key!r} is not the contact key {record.key!r}")
                engine = self.contacts.engine(key, now, decode_state(batch.raw(key)))
                if isinstance(record, ContactChange):
                    engine.apply_change(record)
                    handled = "change_applied"
                else:
                    engine.apply_result(record)
                    handled = "result_applied"
            except (DecodeError, InvalidRecord) as exc:
                self._park(batch, event, exc.reason, exc)
                continue
            except Exception as exc:  # a bug: park the record, keep the partition going
                log.exception("record_failed", **_context(event))
                self._park(batch, event, f"unexpected {type(exc).__name__}: {exc}", exc)
                continue
            effects = engine.effects
            if effects.outputs:
                batch.messages += self.outputs.messages(message.key or b"", effects)
            effects.sent = True
            if effects.dirty:
                state = engine.state
                batch.states[key] = (message.partition, encode_state(state), state.next_due())
            topic = _short(message.topic)
            batch.handled[topic] = batch.handled.get(topic, 0) + 1
            batch.lines.append((handled, engine, _context(event)))
        return batch

    def _park(self, batch: Batch, event: EventT[bytes], reason: str, error: Exception) -> None:
        batch.messages.append(self._letter(event, reason, error))
        batch.parked.append((event, reason, type(error).__name__))

    def _letter(self, event: EventT[bytes], reason: str, error: BaseException) -> Message:
        letter = dead_letter_of("enroller", event.message, reason, error)
        return (self.outputs.dead_letters, event.message.key, encode(letter))

    def _parked(self, event: EventT[bytes], reason: str, error_type: str) -> None:
        """Counted and logged once its dead letter is out."""
        topic = _short(event.message.topic)
        metrics.DEAD_LETTERS.labels(topic).inc()
        metrics.record_outcome(topic, "dead_lettered").inc()
        log.warning("record_dead_lettered", reason=reason, error_type=error_type, **_context(event))


def _key(event: EventT[bytes]) -> str | None:
    key = event.message.key
    return key.decode("utf-8", "replace") if key is not None else None


def _context(event: EventT[bytes]) -> dict[str, Any]:
    message = event.message
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": _key(event),
    }


def _short(topic: str) -> str:
    return topic.rsplit(".", 1)[-1] if "." in topic else topic
