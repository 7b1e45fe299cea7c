"""Drives ``ContactEngine`` the way the agent does, with the state stored as encoded bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.actions import ActionCommand, ActionResult
from schemas.contacts import ContactChange
from schemas.enrollment import EnrollmentEvent
from services.enroller.definitions import Definitions
from services.enroller.effects import Effects
from services.enroller.engine import ContactEngine
from services.enroller.index import CompiledWorkflow
from services.enroller.state import ContactState, decode_state, encode_state

T0 = 1_800_000_000.0  # 2027-01-15, a fixed "now"


@dataclass
class Harness:
    definitions: Definitions
    now: float = T0
    store: dict[str, bytes] = field(default_factory=dict)
    commands: list[ActionCommand] = field(default_factory=list)
    events: list[EnrollmentEvent] = field(default_factory=list)
    last: Effects = field(default_factory=Effects)

    def state(self, key: str = "acme:1001") -> ContactState | None:
        return decode_state(self.store.get(key))

    def _run(self, key: str, act: Callable[[ContactEngine], None]) -> Effects:
        engine = ContactEngine(
            self.definitions.index(), key, decode_state(self.store.get(key)), self.now
        )
        act(engine)
        if engine.effects.dirty:
            self.store[key] = encode_state(engine.state)
        self.commands += engine.effects.commands
        self.events += engine.effects.events
        self.last = engine.effects
        return engine.effects

    def change(self, change: ContactChange) -> Effects:
        return self._run(change.key, lambda e: e.apply_change(change))

    def result(self, result: ActionResult) -> Effects:
        return self._run(result.key, lambda e: e.apply_result(result))

    def tick(self, now: float, key: str = "acme:1001") -> Effects:
        self.now = now
        return self._run(key, lambda e: e.fire_due())

    def existing(self, workflow: CompiledWorkflow, key: str = "acme:1001") -> Effects:
        return self._run(key, lambda e: e.enroll_existing(workflow))

    def restart(self, key: str = "acme:1001") -> Effects:
        return self._run(key, lambda e: e.resend_pending())

    def decisions(self) -> list[tuple[str, str, str | None]]:
        return [(e.workflow_id, e.decision.value, e.reason) for e in self.events]
