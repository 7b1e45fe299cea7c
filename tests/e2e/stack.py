"""The whole smsflow stack as ``smsflow dev up`` runs it, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from schemas.sms import SmsStatusEvent
from schemas.subscriptions import SubscriptionChange
from schemas.topics import SMS_STATUS, SUBSCRIPTION_CHANGES
from services.control.ports import free_port
from services.control.processes import ProcessTable, alive
from services.control.stack import Component, StackSettings, components
from services.control.status_table import LatestStatuses
from tests.processes import ServiceProcess
from tests.stack import Stack

SERVICES = ("gateway-sim", "enroller", "action-runner", "sms-sender", "dashboard")


class DevService(ServiceProcess):
    """A part of the stack that ``smsflow dev up`` started: found by its pid file, its
    output in the stack's log of that part."""

    def __init__(self, component: Component, table: ProcessTable, data_dir: Path) -> None:
        self.name = component.name  # type: ignore[misc]
        self.health_path = component.health_path  # type: ignore[misc]
        super().__init__(data_dir=data_dir, port=component.port)
        self.marker = component.marker
        self.table = table

    @property
    def log_path(self) -> Path:
        return self.table.log_file(self.name)

    def pid(self) -> int | None:
        """The pid of the live process, None once it is gone."""
        return self.table.running(self.name, self.marker)

    def running(self) -> bool:
        return self.pid() is not None

    def kill(self) -> None:
        """kill -9, as a lost node; returns once it is gone."""
        pid = self.pid()
        assert pid is not None, f"{self.name} is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def stack_environment(bootstrap: str, state_dir: Path) -> dict[str, str]:
    """What ``smsflow`` commands of a stack of its own run with: ``state_dir``, free ports,
    a topic prefix of its own."""
    return {
        **os.environ,
        "SMSFLOW_STATE_DIR": str(state_dir),
        "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SMSFLOW_TOPIC_PREFIX": f"e2e{uuid.uuid4().hex[:8]}.",
        "SMSFLOW_PARTITIONS": "3",
        "SMSFLOW_GATEWAY_SIM_PORT": str(free_port()),
        "SMSFLOW_ENROLLER_PORT": str(free_port()),
        "SMSFLOW_ACTION_RUNNER_PORT": str(free_port()),
        "SMSFLOW_SENDER_PORT": str(free_port()),
        "SMSFLOW_DASHBOARD_PORT": str(free_port()),
    }


def stack_settings(env: Mapping[str, str]) -> StackSettings:
    """What ``smsflow dev`` makes of ``env``."""
    named = {k.removeprefix("SMSFLOW_").lower(): v for k, v in env.items() if k[:8] == "SMSFLOW_"}
    return StackSettings(**{k: v for k, v in named.items() if k in StackSettings.model_fields})


class DevStack(Stack):
    """The stack that ``smsflow`` commands run with ``env`` (``stack_environment``) see:
    started by ``smsflow dev up``, stopped by ``smsflow dev down``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        settings = stack_settings(env)
        self.state_dir = settings.state_dir
        table = ProcessTable(settings.state_dir)
        services = (DevService(c, table, settings.data_dir) for c in components(settings))
        super().__init__(settings, *services)

    def start(self) -> Self:
        up = self.smsflow("dev", "up", timeout_s=300)
        if up.returncode != 0:
            raise AssertionError(f"smsflow dev up failed:\n{up.stdout}\n{up.stderr}\n{self.logs()}")
        return self

    def stop(self) -> dict[str, int | None]:
        """``smsflow dev down``: its exit code."""
        return {"dev down": self.smsflow("dev", "down", timeout_s=120).returncode}

    def smsflow(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def apply(
        self, folder: Path, text: str, name: str = "defs.yaml"
    ) -> subprocess.CompletedProcess[str]:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text)
        return self.smsflow("apply", "-f", str(path))

    def emit(self, account: str, contact: str, *properties: str) -> str:
        result = self.smsflow("emit", "contact", account, contact, *properties)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    # ---------------------------------------------------------------- observations

    def statuses(self) -> list[SmsStatusEvent]:
        return list(self.tail(SMS_STATUS, SmsStatusEvent).poll())

    def latest(self) -> dict[tuple[str, str, str], SmsStatusEvent]:
        """(account, contact, workflow) -> the latest status of that SMS."""
        rows = LatestStatuses().extend(self.statuses()).rows()
        return {(e.account_id, e.contact_id, e.workflow_id or ""): e for e in rows}

    def subscription_changes(self) -> list[SubscriptionChange]:
        return list(self.tail(SUBSCRIPTION_CHANGES, SubscriptionChange).poll())

    def gateway(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        simulator = self.services["gateway-sim"]
        if payload is None:
            return simulator.read_json(path, timeout_s=10)
        return simulator.post_json(path, payload, timeout_s=10)

    def gateway_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.gateway("/_sim/messages")
        return messages
