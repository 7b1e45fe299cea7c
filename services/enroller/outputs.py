"""The records an engine's effects become, in the order the engine decided them."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.topics import ACTION_RESULTS, ACTIONS, ENROLLMENT_EVENTS, SMS_STATUS
from services.common.codec import encode

from . import metrics
from .effects import Effects
from .rules import Reason
from .settings import EnrollerSettings


@dataclass(frozen=True)
class Outputs:
    """The enroller's output topics (full names)."""

    actions: str
    events: str
    results: str  # branches taken, reported like the runner's results
    statuses: str  # SMS held by a sending window

    @classmethod
    def of(cls, settings: EnrollerSettings) -> Outputs:
        return cls(
            actions=settings.topic(ACTIONS),
            events=settings.topic(ENROLLMENT_EVENTS),
            results=settings.topic(ACTION_RESULTS),
            statuses=settings.topic(SMS_STATUS),
        )

    def messages(self, effects: Effects) -> list[tuple[str, bytes]]:
        """(topic, value) of what ``effects`` sends, in order (counted in the metrics as it
        is built); every one is keyed by the contact."""
        out: list[tuple[str, bytes]] = []
        for decision in effects.events:
            metrics.decided(decision.decision.value)
            if decision.reason == Reason.GOAL_MET.value:
                metrics.GOALS_MET.labels(decision.account_id, decision.workflow_id).inc()
            out.append((self.events, encode(decision)))
        out += [(self.results, encode(result)) for result in effects.results]
        out += [(self.statuses, encode(status)) for status in effects.statuses]
        for command in effects.commands:
            metrics.commanded(command.action.type)
            out.append((self.actions, encode(command)))
        return out
