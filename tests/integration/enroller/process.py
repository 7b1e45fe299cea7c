"""The enroller as a real process, a tail of its output topics, and the action runner's part."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied
from schemas.topics import ACTION_RESULTS, CONTACT_CHANGES, DEFINITIONS, TopicSpec
from services.common.codec import decode
from services.common.settings import KafkaSettings
from services.control.ports import free_port
from tests.support import produce

M = TypeVar("M", bound=BaseModel)
ROOT = Path(__file__).resolve().parents[3]


class EnrollerProcess:
    def __init__(self, settings: KafkaSettings, data_dir: Path, **env: str) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "enroller.log"
        self.env = {
            **os.environ,
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SMSFLOW_ENROLLER_PORT": str(self.port),
            "SMSFLOW_ENROLLER_HOST": "127.0.0.1",
            "SMSFLOW_DATA_DIR": str(data_dir),
            "SMSFLOW_ENROLLER_TIMER_INTERVAL_S": "0.2",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> EnrollerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.enroller"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"enroller exited {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"enroller not healthy in {timeout_s}s:\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
            return str(r.read().decode())

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Tail(Generic[M]):
    """Everything on one topic since its beginning, decoded, read incrementally."""

    def __init__(self, settings: KafkaSettings, spec: TopicSpec, model: type[M]) -> None:
        self.model = model
        self.items: list[M] = []
        self.consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
        topic = settings.topic(spec)
        partitions = [
            TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic) or ()
        ]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)

    def poll(self) -> list[M]:
        for records in self.consumer.poll(timeout_ms=100).values():
            self.items += [decode(self.model, r.value) for r in records]
        return self.items

    def wait(
        self, probe: Callable[[list[M]], Any], timeout_s: float = 30.0, what: str = "records"
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            found = probe(self.poll())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; have {self.items!r}"[:3000])

    def settle(self, seconds: float) -> list[M]:
        """Keep reading for ``seconds`` (to show that nothing more arrives)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
        return self.items

    def close(self) -> None:
        self.consumer.close()


def publish_definitions(settings: KafkaSettings, documents: list[dict[str, Any]]) -> None:
    events = [DefinitionApplied.model_validate({"document": d}) for d in documents]
    produce(settings, DEFINITIONS, events)


def publish_revision(settings: KafkaSettings, document: dict[str, Any], revision: int) -> None:
    produce(
        settings,
        DEFINITIONS,
        [DefinitionApplied.model_validate({"document": document, "revision": revision})],
    )


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
