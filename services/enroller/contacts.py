"""The contacts' states: read, decided by an engine, written back after their outputs.

Shared by the record batches and the timer. Each write goes to the key's own partition
(``on_partition``: faust's RocksDB store files a write under the current event's
partition), and schedules the contact's next due time.
"""

from __future__ import annotations

from typing import Any

from services.common.logging import get_logger

from .definitions import Definitions
from .engine import ContactEngine
from .guard import KeyGuard
from .outputs import Outputs
from .partitioning import on_partition, partition_of
from .settings import EnrollerSettings
from .state import ContactState, decode_state, encode_state
from .timers import TimerQueue

log = get_logger("services.enroller")


class Contacts:
    def __init__(
        self,
        settings: EnrollerSettings,
        definitions: Definitions,
        partitions: int,
        outputs: Outputs,
        table: Any = None,
        marks: Any = None,
    ) -> None:
        self.settings = settings
        self.definitions = definitions
        self.partitions = partitions
        self.outputs = outputs
        self.table = table  # key bytes -> encoded ContactState (a faust table)
        self.marks = marks  # per partition: workflows acted on for enroll_existing
        self.timers = TimerQueue()
        self.guard = KeyGuard()

    def engine(self, key: str, now: float, state: ContactState | None = None) -> ContactEngine:
        return ContactEngine(
            self.definitions.index(),
            key,
            self.load(key) if state is None else state,
            now,
            self.settings.enroller_dedupe_window,
        )

    def raw(self, key: str) -> bytes | None:
        value: bytes | None = self.table.get(key.encode())
        return value

    def load(self, key: str) -> ContactState | None:
        return decode_state(self.raw(key))

    def contact_keys(self) -> list[str]:
        return [key.decode() for key in list(self.table.keys())]

    def write(self, key: str, raw: bytes, due: float | None, partition: int | None = None) -> None:
        """Write an encoded state (synchronously: no other task sees a half-written batch)."""
        if partition is None:
            partition = partition_of(key, self.partitions)
        with on_partition(partition):
            self.table[key.encode()] = raw
        self.timers.schedule(key, due)

    async def commit(self, engine: ContactEngine) -> None:
        """One contact's outputs, acknowledged, then its state (the timer's unit of work).

        Call it while holding the contact's key (``guard``); retried, it sends only what
        was not acknowledged and never decides again."""
        effects = engine.effects
        if not effects.sent and effects.outputs:
            await self.outputs.deliver(self.outputs.messages(engine.key.encode(), effects))
        effects.sent = True
        if effects.dirty:
            self.write_state(engine)

    def write_state(self, engine: ContactEngine) -> None:
        state = engine.state
        self.write(engine.key, encode_state(state), state.next_due())


def log_handled(handled: str, engine: ContactEngine, **context: Any) -> None:
    """One line per record or timer: INFO when it decided, sent or noted something."""
    effects = engine.effects
    if not (effects.outputs or effects.notes):
        log.debug(handled, **context)
        return
    fields: dict[str, Any] = context
    if effects.events:
        fields["decisions"] = [
            f"{e.decision.value}:{e.workflow_id}" + (f":{e.reason}" if e.reason else "")
            for e in effects.events
        ]
    if effects.commands:
        fields["dispatched"] = [c.action_id for c in effects.commands]
    for note in effects.notes:
        fields.setdefault("notes", []).append({"event": note.event, **note.fields})
    log.info(handled, **fields)
