"""What a test opens on the real broker (tails, service processes), closed at its end."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from schemas.topics import TopicSpec
from services.common.settings import KafkaSettings
from tests.processes import ServiceProcess
from tests.tail import Tail

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=ServiceProcess)


class OpenTail(Protocol):
    def __call__(self, settings: KafkaSettings, spec: TopicSpec | str, model: type[M]) -> Tail[M]:
        """A tail of the topic, closed at the end of the test (or module)."""


class StartService(Protocol):
    def __call__(self, process: S) -> S:
        """The process, started unless it runs, stopped at the end of the test (or module)."""


class Opened:
    def __init__(self) -> None:
        self.tails: list[Tail[Any]] = []
        self.services: list[ServiceProcess] = []

    def tail(self, settings: KafkaSettings, spec: TopicSpec | str, model: type[M]) -> Tail[M]:
        tail = Tail(settings, spec, model)
        self.tails.append(tail)
        return tail

    def service(self, process: S) -> S:
        self.services.append(process)
        return process if process.running() else process.start()

    def close(self) -> None:
        for process in reversed(self.services):
            process.stop()
        for tail in self.tails:
            tail.close()
