"""Runs the action runner as a process on the real broker and plays the parts around it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.dead_letters import DeadLetter
from schemas.enrollment import action_id, enrollment_id
from schemas.sms import InboundSms, NumberOptOut, SmsRequest, SmsStatusEvent
from schemas.subscriptions import SubscriptionChange
from schemas.topics import (
    ACTION_RESULTS,
    CONTACT_CHANGES,
    DEAD_LETTERS,
    OPT_OUTS,
    SMS_INBOUND,
    SMS_REQUESTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
)
from services.common.settings import KafkaSettings
from tests.documents import SUBSCRIBE
from tests.processes import ServiceProcess
from tests.stack import Stack

# The runner refuses the published default outside local development.
LINK_SECRET = "link-secret-of-the-tests-0123456789"
SENDER = "+358451234567"  # account acme's (tests.documents.account)


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

    def logged(self) -> list[dict[str, Any]]:
        """The JSON lines of the latest start's log, decoded."""
        return [json.loads(text) for text in self.log(tail=None).splitlines() if text[:1] == "{"]


class RunnerStack(Stack):
    """The runner as a process, with the test in the parts around it: the enroller (commands
    in, results read), contacts and their replies (changes and inbound SMS in), the sender
    (requests and statuses read)."""

    def __init__(
        self,
        settings: KafkaSettings,
        runner: RunnerProcess,
        documents: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(settings, runner, documents=documents)
        self.runner = runner
        self.results = self.tail(ACTION_RESULTS, ActionResult)
        self.requests = self.tail(SMS_REQUESTS, SmsRequest)
        self.statuses = self.tail(SMS_STATUS, SmsStatusEvent)
        self.changes = self.tail(SUBSCRIPTION_CHANGES, SubscriptionChange)
        self.contact_changes = self.tail(CONTACT_CHANGES, ContactChange)
        self.dead_letters = self.tail(DEAD_LETTERS, DeadLetter)
        self.opt_outs = self.tail(OPT_OUTS, NumberOptOut)

    def result(self, cmd: Any, count: int = 1, timeout_s: float = 30.0) -> ActionResult:
        """The ``count``-th result for this action id (re-sends share it)."""
        found: list[ActionResult] = self.results.wait(
            lambda rs: [r for r in rs if r.action_id == cmd.action_id][count - 1 :],
            timeout_s,
            f"result {count} of {cmd.action_id}",
        )
        return found[0]

    def run(self, cmd: Any, count: int = 1) -> ActionResult:
        self.producer.command(cmd)
        return self.result(cmd, count)

    def subscribe(self, contact_id: str, **kwargs: Any) -> ActionResult:
        return self.run(command(contact_id, SUBSCRIBE, step=0, **kwargs))

    def holds(self, contact_id: str, **numbers: str) -> None:
        """Contact ``contact_id`` has these numbers (indexed for replies), and is subscribed."""
        props = {**numbers, "hs_marketable_status": "true"}
        self.producer.send(
            CONTACT_CHANGES,
            ContactChange(account_id="acme", contact_id=contact_id, properties=props),
        )
        assert self.subscribe(contact_id).outcome is ActionOutcome.DONE

    def reply(self, number: str, body: str, message_id: str) -> None:
        """An SMS from ``number`` to the sender of account acme."""
        self.producer.send(
            SMS_INBOUND,
            InboundSms.model_validate(
                {
                    "account_id": "acme",
                    "from": number,
                    "to": SENDER,
                    "body": body,
                    "provider_message_id": message_id,
                }
            ),
        )

    def requests_for(self, contact_id: str, workflow_only: bool = True) -> list[SmsRequest]:
        return [
            r
            for r in self.requests.poll()
            if r.contact_id == contact_id and (r.workflow_id or not workflow_only)
        ]

    def statuses_for(self, contact_id: str) -> list[SmsStatusEvent]:
        return [s for s in self.statuses.poll() if s.contact_id == contact_id]

    def number_state(self, number: str, message_id: str) -> NumberOptOut:
        """The opt-outs record written for the reply ``message_id`` from ``number``."""
        found: list[NumberOptOut] = self.opt_outs.wait(
            lambda records: [
                r for r in records if r.number == number and r.provider_message_id == message_id
            ],
            what=f"opt-outs record of {message_id}",
        )
        return found[-1]

    def runner_log_waits_for(self, event: str, contact_id: str, timeout_s: float = 30) -> None:
        self.wait(
            lambda: any(
                (line.get("event"), line.get("contact_id")) == (event, contact_id)
                for line in self.runner.logged()
            ),
            f"{event} of {contact_id} in the runner's log",
            timeout_s,
            interval_s=0.2,
        )


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
