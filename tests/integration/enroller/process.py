"""The enroller as a real process, and the action runner's part played around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES
from services.common.settings import KafkaSettings
from tests.processes import ServiceProcess
from tests.support import produce


class EnrollerProcess(ServiceProcess):
    """``python -m services.enroller`` with this test's topic prefix and data dir."""

    module = "services.enroller"
    name = "enroller"
    port_variable = "SMSFLOW_ENROLLER_PORT"
    base_env = {"SMSFLOW_ENROLLER_HOST": "127.0.0.1", "SMSFLOW_ENROLLER_TIMER_INTERVAL_S": "0.2"}

    def __init__(self, settings: KafkaSettings, data_dir: Path, **env: str) -> None:
        super().__init__(settings, data_dir, env=env)

    def get(self, path: str) -> str:
        return self.read(path, timeout_s=2)


def emit(settings: KafkaSettings, contact: str, deleted: bool = False, **properties: Any) -> None:
    change = ContactChange(
        account_id="acme", contact_id=contact, properties=properties, deleted=deleted
    )
    produce(settings, CONTACT_CHANGES, [change])


def answer(
    settings: KafkaSettings,
    command: ActionCommand,
    outcome: ActionOutcome = ActionOutcome.DONE,
    **fields: Any,
) -> None:
    """Play the action runner: the result of one command."""
    produce(
        settings,
        ACTION_RESULTS,
        [
            ActionResult(
                action_id=command.action_id,
                account_id=command.account_id,
                contact_id=command.contact_id,
                workflow_id=command.workflow_id,
                enrollment_id=command.enrollment_id,
                step=command.step,
                outcome=outcome,
                **fields,
            )
        ],
    )
