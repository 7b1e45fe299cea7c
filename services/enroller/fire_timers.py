"""The timer's work: due delays and deferrals, take-over after a rebalance, enroll_existing.

Runs on the event loop beside the agent (``run``): it sleeps until the earliest due time,
woken early when a nearer one is scheduled, and at least every ``housekeeping_s`` looks for
a new partition assignment or a workflow turned on. Each contact is held (``KeyGuard``)
from its read to its write, and every write goes to the key's own partition.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from services.common.logging import get_logger

from . import metrics
from .contacts import Contacts, log_handled
from .existing import turned_on
from .index import CompiledWorkflow
from .partitioning import key_on, on_partition, partition_of

log = get_logger("services.enroller")
YIELD_EVERY = 200  # contacts per event-loop turn in long scans
TIMER_RETRY_S = 1.0  # a timer whose outputs could not be sent fires again this much later
SETTLING_S = 0.05  # how often to look again while a rebalance or recovery is under way


class Upkeep:
    def __init__(self, app: Any, changes_topic: str, contacts: Contacts) -> None:
        self.app = app
        self.changes_topic = changes_topic
        self.contacts = contacts
        self.ready = False
        self._actives: set[int] | None = None
        self._marks_seen: tuple[int, frozenset[int]] | None = None
        self._mark_keys: dict[int, str] = {}

    async def run(self, housekeeping_s: float) -> None:
        """Fire timers when due, and keep up with assignments and definitions, forever."""
        timers = self.contacts.timers
        while True:
            await timers.wait(housekeeping_s)
            try:
                if not await self.tick(time.time()):
                    # Overdue timers wait for the rebalance; without this sleep the loop
                    # would spin on them and starve the rebalance itself.
                    await asyncio.sleep(SETTLING_S)
            except Exception:  # the loop must keep running; the next turn retries
                log.exception("timer_failed")

    async def tick(self, now: float) -> bool:
        """Timers, and the bookkeeping a new partition assignment or definition calls for;
        False while a rebalance or the tables' recovery keeps them from running."""
        contacts = self.contacts
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return False
        actives = {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == self.changes_topic
        }
        if actives != self._actives:
            await self.take_over(actives)
        await self.check_turned_on(actives)
        due = contacts.timers.pop_due(now)
        if due:
            await self.fire_all(due, now)
        metrics.TIMERS_PENDING.set(len(contacts.timers))
        return True

    async def fire_all(self, keys: list[str], now: float) -> None:
        """Many contacts' due timers like a batch of records: every contact decided, all
        outputs acknowledged at once, then each state written; when the outputs cannot be
        delivered, each contact is fired on its own (and retried later if it still fails)."""
        if len(keys) == 1:
            await self.fire(keys[0], now)
            return
        contacts = self.contacts
        await contacts.guard.acquire(keys)
        try:
            engines = [contacts.engine(key, now) for key in keys]
            messages = []
            for engine in engines:
                engine.fire_due()
                if engine.effects.outputs:
                    messages += contacts.outputs.messages(engine.key.encode(), engine.effects)
                engine.effects.sent = True
            await contacts.outputs.deliver(messages)
            for engine in engines:
                if engine.effects.dirty:
                    contacts.write_state(engine)
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
        finally:
            contacts.guard.release(keys)
        if failure is not None:
            log.warning("timer_batch_split", contacts=len(keys), error=repr(failure))
            for key in keys:
                await self.fire(key, now)
            return
        for engine in engines:
            if engine.effects.dirty:
                metrics.TIMERS_FIRED.inc()
                log_handled("timer_fired", engine, key=engine.key)

    async def fire(self, key: str, now: float) -> None:
        """One contact's due delays and deferrals: outputs first, then the state."""
        contacts = self.contacts
        try:
            async with contacts.guard.hold(key):
                engine = contacts.engine(key, now)
                engine.fire_due()
                await contacts.commit(engine)
        except Exception:
            # Nothing was written, so the timer is still due in the state: look again soon.
            log.exception("timer_failed", key=key)
            contacts.timers.schedule(key, now + TIMER_RETRY_S)
            return
        if engine.effects.dirty:
            metrics.TIMERS_FIRED.inc()
            log_handled("timer_fired", engine, key=key)

    def _owned_keys(self, partitions: set[int]) -> list[str]:
        count = self.contacts.partitions
        return [k for k in self.contacts.contact_keys() if partition_of(k, count) in partitions]

    async def take_over(self, actives: set[int]) -> None:
        """New assignment: rebuild the timer heap; re-send commands that may have been lost.

        Yields to the agent now and then: a record handled meanwhile schedules its own
        timers, and a heap entry made stale by it is dropped when it comes due.
        """
        contacts = self.contacts
        gained = actives - (self._actives or set())
        self._actives = actives
        contacts.timers.clear()
        resend: list[str] = []
        for number, key in enumerate(self._owned_keys(actives), 1):
            state = contacts.load(key)
            if state is not None:
                contacts.timers.schedule(key, state.next_due())
                if partition_of(key, contacts.partitions) in gained and state.awaiting():
                    resend.append(key)
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for key in resend:
            async with contacts.guard.hold(key):
                engine = contacts.engine(key, time.time())
                engine.resend_pending()
                await contacts.commit(engine)
            if engine.effects.commands:
                log.info(
                    "commands_resent",
                    key=key,
                    dispatched=[c.action_id for c in engine.effects.commands],
                )
        if not self.ready:
            self.ready = True
            log.info("service_ready", partitions=sorted(actives), timers=len(contacts.timers))

    # ------------------------------------------------------------ enroll_existing

    async def check_turned_on(self, actives: set[int]) -> None:
        """Scan each owned partition once for every workflow turned on (see ``existing``)."""
        contacts = self.contacts
        index = contacts.definitions.index()
        seen = (index.version, frozenset(actives))
        if seen == self._marks_seen:
            return
        for partition in sorted(actives):
            mark_key = self._mark_key(partition).encode()
            marks = json.loads(contacts.marks.get(mark_key) or b"{}")
            to_scan, updated = turned_on(index, marks)
            for workflow in to_scan:
                await self._scan_existing(partition, workflow)
            if updated != marks:
                with on_partition(partition):
                    contacts.marks[mark_key] = json.dumps(updated, separators=(",", ":")).encode()
        self._marks_seen = seen

    async def _scan_existing(self, partition: int, workflow: CompiledWorkflow) -> None:
        contacts = self.contacts
        prefix = f"{workflow.account_id}:"
        keys = [k for k in self._owned_keys({partition}) if k.startswith(prefix)]
        decided = 0
        for number, key in enumerate(keys, 1):
            async with contacts.guard.hold(key):
                engine = contacts.engine(key, time.time())
                engine.enroll_existing(workflow)
                await contacts.commit(engine)
            if engine.effects.events:
                decided += 1
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        log.info(
            "existing_scanned",
            workflow=workflow.workflow_id,
            account=workflow.account_id,
            partition=partition,
            contacts=len(keys),
            decided=decided,
        )

    def _mark_key(self, partition: int) -> str:
        """The marks table's key for a partition: one the partitioner puts on it."""
        key = self._mark_keys.get(partition)
        if key is None:
            key = self._mark_keys[partition] = key_on(partition, self.contacts.partitions)
        return key
