"""Runs the action runner as a process on the real broker and plays the enroller around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.actions import ActionCommand, ActionResult
from schemas.definitions import DefinitionApplied
from schemas.enrollment import action_id, enrollment_id
from schemas.topics import ACTIONS, DEFINITIONS, TopicSpec
from services.common.kafka import make_producer, send_model
from services.common.settings import KafkaSettings
from tests.processes import ServiceProcess

# The runner refuses the published default outside local development.
LINK_SECRET = "link-secret-of-the-tests-0123456789"


class RunnerProcess(ServiceProcess):
    """``python -m services.action_runner`` with this test's topic prefix and data dir."""

    module = "services.action_runner"
    name = "runner"
    port_variable = "SMSFLOW_ACTION_RUNNER_PORT"
    base_env = {"SMSFLOW_LINK_SECRET": LINK_SECRET}

    def __init__(self, settings: KafkaSettings, data_dir: Path, **env: str) -> None:
        super().__init__(settings, data_dir, env=env)

    def metrics(self) -> str:
        return self.read("/metrics", timeout_s=5)

    def log(self, tail: int | None = 6000) -> str:
        return self.output(tail)


class Producer:
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

    def definitions(self, *documents: dict[str, Any]) -> None:
        self.send(
            DEFINITIONS, *(DefinitionApplied.model_validate({"document": d}) for d in documents)
        )

    def command(self, cmd: ActionCommand) -> ActionCommand:
        self.send(ACTIONS, cmd)
        return cmd

    def close(self) -> None:
        self.producer.close()


def contact(mobile: str | None = "040 123 4567", **props: Any) -> dict[str, Any]:
    return {"firstname": "Aino", "mobilephone": mobile, "hs_marketable_status": "true", **props}


def command(
    contact_id: str,
    action: dict[str, Any],
    *,
    step: int,
    account_id: str = "acme",
    workflow_id: str = "welcome-flow",
    attempt: int = 1,
    props: dict[str, Any] | None = None,
) -> ActionCommand:
    enrollment = enrollment_id(account_id, workflow_id, contact_id, 1)
    return ActionCommand.model_validate(
        {
            "action_id": action_id(enrollment, step),
            "account_id": account_id,
            "contact_id": contact_id,
            "workflow_id": workflow_id,
            "enrollment_id": enrollment,
            "step": step,
            "attempt": attempt,
            "action": action,
            "contact": contact() if props is None else props,
        }
    )


def send(contact_id: str, step: int = 3, **kwargs: Any) -> ActionCommand:
    return command(
        contact_id,
        {"type": "send_sms", "message": kwargs.pop("message", "welcome")},
        step=step,
        **kwargs,
    )


def result_of(results: list[ActionResult], cmd: ActionCommand) -> ActionResult | None:
    return next((r for r in results if r.action_id == cmd.action_id), None)
