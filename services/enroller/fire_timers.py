"""The timer's work: due delays and deferrals, take-over after a rebalance, enroll_existing.

Runs on the event loop beside the record pipeline (``run``): it sleeps until the earliest
due time, woken early when a nearer one is scheduled or a partition is assigned, and at
least every ``housekeeping_s`` looks for a workflow turned on. Every piece of work is a job
of the pipeline on the contact's partition (decided under the partition's lock, outputs
acknowledged, then the state written), so it never interleaves with a batch of records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from aiokafka.structs import TopicPartition

from services.common.logging import get_logger
from services.common.records import Batch, RecordPipeline

from . import metrics
from .contacts import CONTACTS, SCANS, Contacts, handled
from .engine import ContactEngine
from .existing import turned_on
from .index import CompiledWorkflow
from .partitioning import key_on, partition_of
from .state import decode_state

log = get_logger("services.enroller")
CHUNK = 500  # contacts per job: the partition's records wait no longer than this takes
TIMER_RETRY_S = 1.0  # a timer whose outputs could not be sent fires again this much later


class Upkeep:
    """Also the pipeline's rebalance hooks: an assignment rebuilds the timers."""

    def __init__(
        self,
        pipeline: RecordPipeline,
        contacts: Contacts,
        changes_topic: str,
        partitions: int,
    ) -> None:
        self.pipeline = pipeline
        self.state = pipeline.state
        self.contacts = contacts
        self.changes_topic = changes_topic
        self.partitions = partitions
        self.ready = False
        self.owned: set[int] = set()
        self._taking_over = False  # assigned, not yet taken over
        self._gained: set[int] = set()
        self._marks_seen: tuple[int, frozenset[int]] | None = None

    # ------------------------------------------------------------ rebalance hooks

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # jobs on a partition whose state is gone do nothing (``run_job``)

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == self.changes_topic}
        self._gained |= partitions - self.owned
        self.owned = partitions
        self._taking_over = True
        self.contacts.timers.wake()

    # ------------------------------------------------------------ the loop

    async def run(self, housekeeping_s: float) -> None:
        """Fire timers when due, and keep up with assignments and definitions, forever."""
        timers = self.contacts.timers
        while True:
            await timers.wait(housekeeping_s)
            try:
                await self.tick(time.time())
            except Exception:  # the loop must keep running; the next turn retries
                log.exception("timer_failed")

    async def tick(self, now: float) -> None:
        await self.contacts.definitions.loaded.wait()
        if self._taking_over:
            await self.take_over()
        await self.check_turned_on()
        due = self.contacts.timers.pop_due(now)
        if due:
            await self.fire_all(due, now)
        metrics.TIMERS_PENDING.set(len(self.contacts.timers))

    async def _jobs(
        self, keys: Iterable[str], work: Callable[[ContactEngine], None], now: float
    ) -> list[ContactEngine]:
        """``work`` on each contact, as jobs of at most ``CHUNK`` contacts per partition;
        the engines that changed something. Raises when outputs were refused."""
        by_partition: dict[int, list[str]] = {}
        for key in keys:
            by_partition.setdefault(partition_of(key, self.partitions), []).append(key)
        changed: list[ContactEngine] = []
        for partition, partition_keys in by_partition.items():
            pending = iter(partition_keys)
            while chunk := list(islice(pending, CHUNK)):
                changed += await self._job(partition, chunk, work, now)
        return changed

    async def _job(
        self, partition: int, keys: list[str], work: Callable[[ContactEngine], None], now: float
    ) -> list[ContactEngine]:
        engines: list[ContactEngine] = []

        def decide(batch: Batch) -> None:
            for key in keys:
                engine = self.contacts.engine(batch, key, now)
                work(engine)
                self.contacts.keep(batch, engine)
                engines.append(engine)

        if not await self.pipeline.run_job(partition, decide):
            return []  # another instance's partition now
        return [e for e in engines if e.effects.dirty or e.effects.outputs]

    async def fire_all(self, keys: list[str], now: float) -> None:
        """Due timers, many contacts at a time; when their outputs are refused, the same
        contacts fire again a little later (nothing was written)."""
        try:
            fired = await self._jobs(keys, ContactEngine.fire_due, now)
        except Exception as exc:
            log.warning("timers_retried", contacts=len(keys), error=repr(exc))
            for key in keys:
                self.contacts.timers.schedule(key, now + TIMER_RETRY_S)
            return
        for engine in fired:
            metrics.TIMERS_FIRED.inc()
            _log(handled("timer_fired", engine, key=engine.key))

    def _keys(self, partition: int) -> list[tuple[str, Any]]:
        stores = self.state.of(partition) if partition in self.state.partitions else None
        return [] if stores is None else list(stores[CONTACTS].items())

    async def take_over(self) -> None:
        """After an assignment: the timers of every held contact again, and the commands of
        newly gained ones re-sent (they may have been lost with their previous owner)."""
        partitions, self._taking_over = self.owned, False
        gained, self._gained = self._gained, set()
        timers = self.contacts.timers
        resend: list[str] = []
        for partition in sorted(partitions):
            for key, raw in self._keys(partition):
                state = decode_state(raw)
                if state is None:
                    continue
                timers.schedule(key, state.next_due())
                if partition in gained and state.awaiting():
                    resend.append(key)
        try:
            resent = await self._jobs(resend, ContactEngine.resend_pending, time.time())
        except Exception:
            self._gained |= gained  # the next turn tries again
            self._taking_over = True
            raise
        for engine in resent:
            log.info(
                "commands_resent",
                key=engine.key,
                dispatched=[c.action_id for c in engine.effects.commands],
            )
        if not self.ready:
            self.ready = True
            log.info("service_ready", partitions=sorted(partitions), timers=len(timers))

    # ------------------------------------------------------------ enroll_existing

    async def check_turned_on(self) -> None:
        """Scan each owned partition once for every workflow turned on (see ``existing``);
        a partition's record of what it acted on is written after its scans."""
        index = self.contacts.definitions.index()
        seen = (index.version, frozenset(self.owned))
        if seen == self._marks_seen:
            return
        for partition in sorted(self.owned):
            if partition not in self.state.partitions:
                return  # being restored: the next turn looks again
            mark_key = key_on(partition, self.partitions)
            marks = self.state.of(partition)[SCANS].get(mark_key) or {}
            to_scan, updated = turned_on(index, marks)
            for workflow in to_scan:
                await self._scan_existing(partition, workflow)
            if updated != marks:

                def put(batch: Batch, key: str = mark_key, value: Any = updated) -> None:
                    batch.put(SCANS, key, value)

                if not await self.pipeline.run_job(partition, put):
                    return
        self._marks_seen = seen

    async def _scan_existing(self, partition: int, workflow: CompiledWorkflow) -> None:
        prefix = f"{workflow.account_id}:"
        keys = [key for key, _ in self._keys(partition) if key.startswith(prefix)]

        def enroll(engine: ContactEngine) -> None:
            engine.enroll_existing(workflow)

        changed = await self._jobs(keys, enroll, time.time())
        log.info(
            "existing_scanned",
            workflow=workflow.workflow_id,
            account=workflow.account_id,
            partition=partition,
            contacts=len(keys),
            decided=sum(1 for e in changed if e.effects.events),
        )


def _log(line: Any) -> None:
    (log.debug if line.debug else log.info)(line.event, **line.fields)
