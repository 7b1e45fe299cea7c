"""The contacts' states in the record pipeline's stores, and what an engine's work becomes.

A contact's state is the engine's encoded record, kept as bytes in the ``contacts`` store
of the contact's partition (the same bytes as its changelog record). Records, due timers
and scans all read it through a ``Batch`` and put it back into one, so the pipeline sends
the outputs before it writes the state, under the partition's lock: no two of them
interleave on one contact.
"""

from __future__ import annotations

from typing import Any

from services.common.records import Batch, Handled

from .definitions import Definitions
from .engine import ContactEngine
from .outputs import Outputs
from .settings import EnrollerSettings
from .state import decode_state, encode_state
from .timers import TimerQueue

CONTACTS = "contacts"  # contact key -> encoded ContactState
SCANS = "existing-scans"  # per partition: workflows acted on for enroll_existing
STORES = (CONTACTS, SCANS)


class Contacts:
    def __init__(
        self, settings: EnrollerSettings, definitions: Definitions, outputs: Outputs
    ) -> None:
        self.settings = settings
        self.definitions = definitions
        self.outputs = outputs
        self.timers = TimerQueue()

    def engine(self, batch: Batch, key: str, now: float) -> ContactEngine:
        """An engine on the contact's latest state (as the batch has it)."""
        return ContactEngine(
            self.definitions.index(),
            key,
            decode_state(batch.get(CONTACTS, key)),
            now,
            self.settings.enroller_dedupe_window,
        )

    def keep(self, batch: Batch, engine: ContactEngine) -> None:
        """The engine's outputs, then its state, into the batch; its next due time into the
        timers (an entry made stale by a batch that then fails is dropped when it is due:
        the state is read again before anything fires)."""
        effects = engine.effects
        key = engine.key
        if effects.outputs:
            for topic, value in self.outputs.messages(effects):
                batch.emit(topic, key, value)
        if effects.dirty:
            state = engine.state
            batch.put(CONTACTS, key, encode_state(state))
            self.timers.schedule(key, state.next_due())


def handled(event: str, engine: ContactEngine, **fields: Any) -> Handled:
    """One line per record or timer: INFO when it decided, sent or noted something."""
    effects = engine.effects
    if not (effects.outputs or effects.notes):
        return Handled(event, fields, debug=True)
    if effects.events:
        fields["decisions"] = [
            f"{e.decision.value}:{e.workflow_id}" + (f":{e.reason}" if e.reason else "")
            for e in effects.events
        ]
    if effects.commands:
        fields["dispatched"] = [c.action_id for c in effects.commands]
    for note in effects.notes:
        fields.setdefault("notes", []).append({"event": note.event, **note.fields})
    return Handled(event, fields)
