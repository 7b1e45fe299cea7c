"""The timer's work: due delays and deferrals, take-over after a rebalance, enroll_existing.

Runs on the event loop beside the agent. Each contact is read, decided and written without
an ``await`` in between, so the agent never sees a half-applied change, and every write
goes to the key's own partition (see ``partitioning``).
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from typing import TYPE_CHECKING

from structlog.contextvars import bind_contextvars, clear_contextvars

from services.common.logging import get_logger

from . import metrics
from .existing import turned_on
from .index import CompiledWorkflow
from .partitioning import key_on, on_partition, partition_of
from .retries import retrying

if TYPE_CHECKING:
    from .app import Enroller

log = get_logger("services.enroller")
YIELD_EVERY = 200  # contacts per event-loop turn in long scans
TIMER_RETRY_S = 1.0  # a timer whose outputs could not be sent fires again this much later


class Upkeep:
    def __init__(self, enroller: Enroller) -> None:
        self.enroller = enroller
        self.ready = False
        self._actives: set[int] | None = None
        self._marks_seen: tuple[int, frozenset[int]] | None = None
        self._mark_keys: dict[int, str] = {}

    async def tick(self, now: float) -> None:
        """Timers, and the bookkeeping a new partition assignment or definition calls for."""
        enroller = self.enroller
        app = enroller.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        actives = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == enroller.changes_topic
        }
        if actives != self._actives:
            await self.take_over(actives)
        await self.check_turned_on(actives)
        for key in enroller.timers.pop_due(now):
            await self.fire(key, now)
        metrics.TIMERS_PENDING.set(len(enroller.timers))

    async def fire(self, key: str, now: float) -> None:
        """One contact's due delays and deferrals: outputs first, then the state."""
        enroller = self.enroller
        clear_contextvars()
        bind_contextvars(service="enroller", key=key)
        try:
            async with enroller.guard.hold(key):
                engine = enroller.engine(key, now)
                engine.fire_due()
                await retrying(partial(enroller.commit, engine, acked=True))
        except Exception:
            # Nothing was written, so the timer is still due in the state: look again soon.
            log.exception("timer_failed")
            enroller.timers.schedule(key, now + TIMER_RETRY_S)
            return
        if engine.effects.dirty:
            metrics.TIMERS_FIRED.inc()
            enroller.log_handled("timer_fired", engine)

    def _owned_keys(self, partitions: set[int]) -> list[str]:
        count = self.enroller.partitions
        return [k for k in self.enroller.contact_keys() if partition_of(k, count) in partitions]

    async def take_over(self, actives: set[int]) -> None:
        """New assignment: rebuild the timer heap; re-send commands that may have been lost.

        Yields to the agent now and then: a record handled meanwhile schedules its own
        timers, and a heap entry made stale by it is dropped when it comes due.
        """
        enroller = self.enroller
        gained = actives - (self._actives or set())
        self._actives = actives
        enroller.timers.clear()
        resend: list[str] = []
        for number, key in enumerate(self._owned_keys(actives), 1):
            state = enroller.load(key)
            if state is not None:
                enroller.timers.schedule(key, state.next_due())
                if partition_of(key, enroller.partitions) in gained and state.awaiting():
                    resend.append(key)
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for key in resend:
            async with enroller.guard.hold(key):
                engine = enroller.engine(key, time.time())
                engine.resend_pending()
                await retrying(partial(enroller.commit, engine, acked=True))
            if engine.effects.commands:
                log.info(
                    "commands_resent",
                    key=key,
                    dispatched=[c.action_id for c in engine.effects.commands],
                )
        if not self.ready:
            self.ready = True
            log.info("service_ready", partitions=sorted(actives), timers=len(enroller.timers))

    # ------------------------------------------------------------ enroll_existing

    async def check_turned_on(self, actives: set[int]) -> None:
        """Scan each owned partition once for every workflow turned on (see ``existing``)."""
        enroller = self.enroller
        index = enroller.definitions.index()
        seen = (index.version, frozenset(actives))
        if seen == self._marks_seen:
            return
        for partition in sorted(actives):
            mark_key = self._mark_key(partition).encode()
            marks = json.loads(enroller.marks.get(mark_key) or b"{}")
            to_scan, updated = turned_on(index, marks)
            for workflow in to_scan:
                await self._scan_existing(partition, workflow)
            if updated != marks:
                with on_partition(partition):
                    enroller.marks[mark_key] = json.dumps(updated, separators=(",", ":")).encode()
        self._marks_seen = seen

    async def _scan_existing(self, partition: int, workflow: CompiledWorkflow) -> None:
        enroller = self.enroller
        prefix = f"{workflow.account_id}:"
        keys = [k for k in self._owned_keys({partition}) if k.startswith(prefix)]
        decided = 0
        for number, key in enumerate(keys, 1):
            async with enroller.guard.hold(key):
                engine = enroller.engine(key, time.time())
                engine.enroll_existing(workflow)
                await retrying(partial(enroller.commit, engine, acked=True))
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
            key = self._mark_keys[partition] = key_on(partition, self.enroller.partitions)
        return key
