"""A whole smsflow stack as processes (``smsflow dev up``) for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.sms import SmsStatusEvent
from schemas.subscriptions import SubscriptionChange
from schemas.topics import SMS_STATUS, SUBSCRIPTION_CHANGES
from services.common.settings import KafkaSettings
from services.control.ports import free_port
from services.control.status_table import LatestStatuses
from tests.support import read_models, wait_for

SERVICES = ("gateway-sim", "enroller", "action-runner", "sms-sender", "dashboard")


def stack_environment(bootstrap: str, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
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
    )
    return env


@dataclass
class Stack:
    env: dict[str, str]
    state_dir: Path

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings(
            kafka_bootstrap_servers=self.env["SMSFLOW_KAFKA_BOOTSTRAP_SERVERS"],
            topic_prefix=self.env["SMSFLOW_TOPIC_PREFIX"],
            partitions=int(self.env["SMSFLOW_PARTITIONS"]),
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SMSFLOW_GATEWAY_SIM_PORT']}"

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

    def pid(self, name: str) -> int:
        return int((self.state_dir / "run" / f"{name}.pid").read_text())

    def logs(self, lines: int = 25) -> str:
        parts = []
        for name in SERVICES:
            path = self.state_dir / "logs" / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {name}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    # ---------------------------------------------------------------- observations

    def statuses(self) -> list[SmsStatusEvent]:
        return read_models(self.settings, SMS_STATUS, SmsStatusEvent)

    def latest(self) -> dict[tuple[str, str, str], SmsStatusEvent]:
        """(account, contact, workflow) -> the latest status of that SMS."""
        rows = LatestStatuses().extend(self.statuses()).rows()
        return {(e.account_id, e.contact_id, e.workflow_id or ""): e for e in rows}

    def subscription_changes(self) -> list[SubscriptionChange]:
        return read_models(self.settings, SUBSCRIPTION_CHANGES, SubscriptionChange)

    def gateway(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.gateway_url}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if payload is None else "POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def gateway_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.gateway("/_sim/messages")
        return messages

    def wait(self, probe: Callable[[], Any], what: str, timeout_s: float = 90.0) -> Any:
        try:
            return wait_for(probe, timeout_s, interval_s=1.0, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
