"""The gateway simulator and the sender as subprocesses, on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.definitions import DefinitionApplied
from schemas.topics import DEFINITIONS
from services.common.settings import KafkaSettings
from services.control.ports import free_port
from tests.support import produce, stop_process

REPO = Path(__file__).resolve().parents[3]

# Explicit webhook secrets, as the sender requires outside dev; the simulator signs with them.
WEBHOOK_SECRETS = {
    "SMSFLOW_WEBHOOK_SECRET": secrets.token_hex(32),
    "SMSFLOW_TWILIO_AUTH_TOKEN": secrets.token_hex(16),
}

# Short timeouts and backoffs so the fault tests stay within their time budget.
FAST_SENDER = {
    "SMSFLOW_SENDER_REQUEST_TIMEOUT_S": "0.5",
    "SMSFLOW_SENDER_MAX_ATTEMPTS": "10",
    "SMSFLOW_SENDER_BACKOFF_BASE_S": "0.05",
    "SMSFLOW_SENDER_BACKOFF_CAP_S": "0.5",
    "SMSFLOW_SENDER_AMBIGUOUS_WAIT_S": "3",
    "SMSFLOW_SENDER_COMMIT_INTERVAL_S": "0.2",
    "SMSFLOW_SENDER_DRAIN_WAIT_S": "5",
    "SMSFLOW_SENDER_SESSION_TIMEOUT_MS": "6000",
}


def _read_line(process: subprocess.Popen[str], marker: str, timeout_s: float, log: Path) -> str:
    """The first stdout line containing ``marker`` (stdout carries only readiness lines)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-3000:]}")
        line = process.stdout.readline()
        if marker in line:
            return line
    raise TimeoutError(f"no {marker!r} within {timeout_s}s: {log.read_text()[-3000:]}")


class Simulator:
    def __init__(self, api: str, sender_port: int, **flags: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="gateway-sim-", suffix=".log")[1])
        args = [sys.executable, "-m", "services.gateway_sim", "--port", str(self.port)]
        args += ["--seed", "7", "--inbound-api", api]
        args += ["--inbound-webhook", f"http://127.0.0.1:{sender_port}/webhooks/inbound"]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSFLOW_")}
        env.update(WEBHOOK_SECRETS)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        _read_line(self.process, "listening on", 20, self.log)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return json.load(answer)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def messages(self) -> list[dict[str, Any]]:
        return list(self.get("/_sim/messages"))

    def stop(self) -> None:
        stop_process(self.process, timeout_s=10)
        self.log.unlink(missing_ok=True)


class Sender:
    def __init__(
        self, settings: KafkaSettings, sim: Simulator, api: str, port: int, **env: str
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SMSFLOW_")},
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SMSFLOW_PARTITIONS": str(settings.partitions),
            "SMSFLOW_GATEWAY_URL": sim.url,
            "SMSFLOW_GATEWAY_API": api,
            "SMSFLOW_SENDER_PORT": str(port),
            "SMSFLOW_SENDER_PUBLIC_URL": self.url,
            **WEBHOOK_SECRETS,
            **FAST_SENDER,
            **env,
        }
        self.log = Path(tempfile.mkstemp(prefix="sms-sender-", suffix=".log")[1])
        self.process: subprocess.Popen[str] | None = None

    def start(self, wait: bool = True) -> Sender:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.sms_sender"],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        if wait:
            _read_line(self.process, "service_ready", 60, self.log)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self) -> int:
        """SIGTERM and wait; the log is kept only when the exit was not clean."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        code = stop_process(self.process, timeout_s=30)
        if code == 0:
            self.log.unlink(missing_ok=True)
        return code

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        )


def publish_definitions(settings: KafkaSettings, documents: list[dict[str, Any]]) -> None:
    """The documents on the definitions topic, as ``smsflow apply`` leaves them."""
    produce(
        settings,
        DEFINITIONS,
        [DefinitionApplied.model_validate({"document": d}) for d in documents],
    )


@contextlib.contextmanager
def sender_and_simulator(
    settings: KafkaSettings, api: str, documents: list[dict[str, Any]], **sim_flags: Any
) -> Iterator[tuple[Simulator, Sender]]:
    """The definitions published, the simulator and a sender running; the sender must exit 0."""
    publish_definitions(settings, documents)
    port = free_port()
    sim = Simulator(api, port, **sim_flags)
    sender = Sender(settings, sim, api, port)
    try:
        sender.start()
        yield sim, sender
    finally:
        code = sender.stop()
        sim.stop()
    assert code == 0, sender.log.read_text()[-3000:]
