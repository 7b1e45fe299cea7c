"""Runs the action runner as a process on the real broker and plays the enroller around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from schemas.actions import ActionCommand, ActionResult
from schemas.definitions import DefinitionApplied
from schemas.enrollment import action_id, enrollment_id
from schemas.topics import ACTIONS, DEFINITIONS, TopicSpec
from services.common.codec import decode
from services.common.kafka import make_producer, send_model
from services.common.settings import KafkaSettings
from services.control.ports import free_port

M = TypeVar("M", bound=BaseModel)
# The runner refuses the published default outside local development.
LINK_SECRET = "link-secret-of-the-tests-0123456789"
ROOT = Path(__file__).resolve().parents[3]


class RunnerProcess:
    """``python -m services.action_runner`` with this test's topic prefix and data dir."""

    def __init__(self, settings: KafkaSettings, data_dir: Path, **env: str) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SMSFLOW_ACTION_RUNNER_PORT": str(self.port),
            "SMSFLOW_LINK_SECRET": LINK_SECRET,
            "SMSFLOW_DATA_DIR": str(data_dir),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 90.0) -> RunnerProcess:
        self.starts += 1
        with (self.data_dir / f"runner-{self.starts}.log").open("wb") as log:
            # The child keeps its own copy of the descriptor.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.action_runner"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runner exited with {self.process.returncode}:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"runner not healthy after {timeout_s}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self, tail: int | None = 6000) -> str:
        path = self.data_dir / f"runner-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text


class Tail(Generic[M]):
    """Everything on one topic so far, read incrementally (kept decoded)."""

    def __init__(self, settings: KafkaSettings, spec: TopicSpec | str, model: type[M]) -> None:
        self.topic = spec if isinstance(spec, str) else settings.topic(spec)
        self.model = model
        self.consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.partitions = tps
        self.items: list[M] = []
        self.raw: list[tuple[str | None, bytes | None]] = []

    def poll(self) -> list[M]:
        """Everything on the topic up to its end as of now."""
        end = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + 15
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end")
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                for record in records:
                    key = record.key.decode() if record.key else None
                    self.raw.append((key, record.value))
                    self.items.append(decode(self.model, record.value))
        return self.items

    def wait(
        self, predicate: Callable[[list[M]], Any], timeout_s: float = 30.0, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            found = predicate(self.poll())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate} on {self.topic}")
            time.sleep(0.05)

    def close(self) -> None:
        self.consumer.close()


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


def account(account_id: str = "acme", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smsflow/v1",
        "kind": "Account",
        "metadata": {"id": account_id},
        "spec": {
            "sms_access": True,
            "sender": "+358451234567",
            "default_region": "FI",
            "time_zone": "Europe/Helsinki",
            "quiet_hours": None,
            "subscription_types": [{"id": "sms-marketing", "name": "Marketing SMS"}],
            "opt_out_text": "Reply STOP to opt out",
            **spec,
        },
    }


def message(message_id: str = "welcome", account_id: str = "acme", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smsflow/v1",
        "kind": "SmsMessage",
        "metadata": {"id": message_id, "account": account_id},
        "spec": {
            "name": message_id,
            "body": "Hei {{ contact.firstname | default('there') }}! Tervetuloa.",
            "subscription_type": "sms-marketing",
            "delivery": "workflow",
            "state": "published",
            **spec,
        },
    }


def workflow(
    workflow_id: str = "welcome-flow", account_id: str = "acme", enabled: bool = True
) -> dict[str, Any]:
    return {
        "apiVersion": "smsflow/v1",
        "kind": "Workflow",
        "metadata": {"id": workflow_id, "account": account_id},
        "spec": {"enabled": enabled, "actions": [{"type": "send_sms", "message": "welcome"}]},
    }


SUBSCRIBE = {
    "type": "manage_subscription",
    "subscription_type": "sms-marketing",
    "status": "subscribed",
    "legal_basis": "CONSENT_WITH_NOTICE",
    "legal_basis_explanation": "Ticked the SMS box at checkout",
    "processing_legal_basis": "PROCESS_AND_STORE",
}


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
