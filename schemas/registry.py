"""Every event model by ``event_type``, and decoding of any topic value."""

from __future__ import annotations

from pydantic import BaseModel

from schemas.envelope import Event
from schemas.topics import ALL_TOPICS

EVENT_MODELS: dict[str, type[Event]] = {}
for _spec in ALL_TOPICS:
    for _model in _spec.values:
        assert issubclass(_model, Event)
        _default = _model.model_fields["event_type"].default
        EVENT_MODELS[str(_default)] = _model


def model_for(event_type: str) -> type[BaseModel]:
    return EVENT_MODELS[event_type]
