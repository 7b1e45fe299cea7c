"""Several smsflow services on one broker under one topic prefix, for integration and
end-to-end tests: the services as processes, tails of the topics a test reads, a producer
for the records it plays in, and the services' logs when a wait fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from schemas.actions import ActionCommand
from schemas.topics import ACTIONS, DEFINITIONS, TopicSpec
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer, send_model
from tests.documents import definition_records
from tests.harness import Opened
from tests.processes import ServiceProcess
from tests.support import wait_for
from tests.tail import Tail

M = TypeVar("M", bound=BaseModel)


class Producer:
    """One producer for all the records a test plays in, each write acknowledged."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.producer = make_producer(settings)

    def send(self, spec: TopicSpec, *events: Any) -> None:
        for event in events:
            send_model(self.producer, self.settings.topic(spec), event)
        self.producer.flush(timeout=30)

    def raw(self, spec: TopicSpec, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(self.settings.topic(spec), key=key, value=value)
        self.producer.flush(timeout=30)

    def command(self, cmd: ActionCommand) -> ActionCommand:
        """An action command, as the enroller sends it."""
        self.send(ACTIONS, cmd)
        return cmd

    def definitions(self, *documents: dict[str, Any]) -> None:
        self.send(DEFINITIONS, *definition_records(list(documents)))

    def close(self) -> None:
        self.producer.close()


class Stack:
    """``services`` (each under its ``name``) against ``settings``, started once the
    ``documents`` are on the definitions topic; as a context manager, closed at its end."""

    def __init__(
        self,
        settings: KafkaSettings,
        *services: ServiceProcess,
        documents: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.settings = settings
        self.services = {service.name: service for service in services}
        self.documents = list(documents)
        self.opened = Opened()
        self.tails: dict[str, Tail[Any]] = {}

    @cached_property
    def producer(self) -> Producer:
        return Producer(self.settings)

    def start(self) -> Self:
        if self.documents:
            self.producer.definitions(*self.documents)
        for service in self.services.values():
            self.opened.service(service)
        return self

    def stop(self) -> dict[str, int | None]:
        """Every service stopped, the last started first; their exit codes."""
        return {name: self.services[name].stop() for name in reversed(self.services)}

    def close(self) -> dict[str, int | None]:
        """Stopped, and the tails and the producer closed; the services' exit codes."""
        try:
            return self.stop()
        finally:
            self.opened.close()
            if "producer" in self.__dict__:  # opened
                self.producer.close()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def tail(self, spec: TopicSpec | str, model: type[M]) -> Tail[M]:
        """The topic's tail (``spec``, or a full topic name), opened on first use: the topic
        must exist by then."""
        topic = spec if isinstance(spec, str) else self.settings.topic(spec)
        if topic not in self.tails:
            self.tails[topic] = self.opened.tail(self.settings, topic, model)
        tail: Tail[M] = self.tails[topic]
        return tail

    def wait(
        self,
        probe: Callable[[], Any],
        what: str,
        timeout_s: float = 90.0,
        interval_s: float = 1.0,
    ) -> Any:
        """The first truthy ``probe()``; on timeout, fails with the services' latest logs."""
        try:
            return wait_for(probe, timeout_s, interval_s=interval_s, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join(service.output(tail=None).splitlines()[-lines:])
            for name, service in self.services.items()
        )
