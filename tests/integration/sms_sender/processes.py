"""The gateway simulator and the sender as processes, on free loopback ports."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.common.settings import KafkaSettings
from services.control.ports import free_port
from tests.documents import publish_definitions
from tests.processes import ServiceProcess

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


class Simulator(ServiceProcess):
    """The gateway simulator, started at once, calling the sender at ``sender_port`` back."""

    module = "services.gateway_sim"
    name = "gateway-sim"
    base_env = WEBHOOK_SECRETS
    health_path = "/_sim/health"

    def __init__(self, api: str, sender_port: int, **flags: Any) -> None:
        port = free_port()
        args = ["--port", str(port), "--seed", "7", "--inbound-api", api]
        args += ["--inbound-webhook", f"http://127.0.0.1:{sender_port}/webhooks/inbound"]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        super().__init__(port=port, args=args)
        self.start(timeout_s=20)

    def get(self, path: str) -> Any:
        return self.read_json(path)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        return self.post_json(path, payload)

    def messages(self) -> list[dict[str, Any]]:
        return list(self.get("/_sim/messages"))

    def stop(self, timeout_s: float = 10.0) -> int | None:
        code = super().stop(timeout_s)
        self.log_path.unlink(missing_ok=True)
        return code


class Sender(ServiceProcess):
    """The sender on ``port``, calling ``sim`` with ``api``; short timeouts and backoffs."""

    module = "services.sms_sender"
    name = "sms-sender"
    port_variable = "SMSFLOW_SENDER_PORT"
    base_env = {**WEBHOOK_SECRETS, **FAST_SENDER}

    def __init__(
        self, settings: KafkaSettings, sim: Simulator, api: str, port: int, **env: str
    ) -> None:
        wiring = {
            "SMSFLOW_PARTITIONS": str(settings.partitions),
            "SMSFLOW_GATEWAY_URL": sim.url,
            "SMSFLOW_GATEWAY_API": api,
            "SMSFLOW_SENDER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        super().__init__(settings, port=port, env={**wiring, **env})

    @property
    def log(self) -> Path:
        return self.log_path

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; the log is kept only when the exit was not clean."""
        code = super().stop(timeout_s) or 0
        if code == 0:
            self.log.unlink(missing_ok=True)
        return code

    def metric(self, name: str) -> float:
        text = self.read("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
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
