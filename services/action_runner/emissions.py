"""What handling one input produces: events for topics, and the new state to store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas.topics import TopicSpec
from services.common.records import Batch


@dataclass(frozen=True)
class Emission:
    """One event for one topic; ``key`` defaults to the event's own key."""

    topic: TopicSpec | str  # a TopicSpec, or the name (without prefix) of an internal topic
    event: BaseModel
    key: str

    @classmethod
    def of(cls, topic: TopicSpec | str, event: BaseModel, key: str | None = None) -> Emission:
        return cls(topic, event, key if key is not None else str(getattr(event, "key")))  # noqa: B009


@dataclass
class Effects:
    emissions: list[Emission] = field(default_factory=list)
    # Why the input also goes to dead-letters (it named something that does not exist).
    dead_letter: str | None = None

    def emit(self, topic: TopicSpec | str, event: BaseModel, key: str | None = None) -> None:
        self.emissions.append(Emission.of(topic, event, key))


TopicNames = Callable[[TopicSpec | str], str]


def emit_all(batch: Batch, names: TopicNames, emissions: Iterable[Emission]) -> None:
    """Queues ``emissions`` on the batch, in order, each on its full topic name."""
    for emission in emissions:
        batch.emit(names(emission.topic), emission.key, emission.event)
