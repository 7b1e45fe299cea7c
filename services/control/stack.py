"""The local stack: which processes, on which ports, with which environment (no I/O here)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydantic import Field

from services.common.settings import KafkaSettings

HOST = "127.0.0.1"


class StackSettings(KafkaSettings):
    """``SMSFLOW_STATE_DIR``, the ports, and where the broker is (env, prefix ``SMSFLOW_``)."""

    state_dir: Path = Path(".smsflow")
    kafka_port: int = 9092  # the local broker's port, when dev up runs one
    gateway_sim_port: int = 8025
    enroller_port: int = 6066
    action_runner_port: int = 6067
    sender_port: int = 8026
    dashboard_port: int = 8030
    ready_timeout_s: float = Field(default=120.0, gt=0)
    # Whether SMSFLOW_KAFKA_BOOTSTRAP_SERVERS named a broker (then dev up starts none).
    external_broker: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StackSettings:
        external = bool(environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS"))
        settings = cast(StackSettings, cls.from_env(external_broker=external))
        if not external:
            settings = settings.model_copy(
                update={"kafka_bootstrap_servers": f"{HOST}:{settings.kafka_port}"}
            )
        return settings.model_copy(update={"state_dir": settings.state_dir.resolve()})

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_sim_port}"

    @property
    def sender_url(self) -> str:
        return f"http://{HOST}:{self.sender_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{self.dashboard_port}/"

    @property
    def inbound_webhook(self) -> str:
        return f"{self.sender_url}/webhooks/inbound"


@dataclass(frozen=True)
class Component:
    name: str  # also the pid and log file name
    module: str  # python -m <module>
    port: int
    health_path: str
    extra_args: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        """What the command line of our process contains."""
        return f"-m {self.module}"

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.port}{self.health_path}"

    def argv(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", self.module, *self.extra_args]


def components(settings: StackSettings) -> list[Component]:
    """Everything but the broker, in start order (the simulator first: the sender calls it;
    the dashboard last: it only reads)."""
    return [
        Component(
            "gateway-sim",
            "services.gateway_sim",
            settings.gateway_sim_port,
            "/_sim/health",
            (
                "--host",
                HOST,
                "--port",
                str(settings.gateway_sim_port),
                "--inbound-webhook",
                settings.inbound_webhook,
            ),
        ),
        Component("enroller", "services.enroller", settings.enroller_port, "/healthz"),
        Component(
            "action-runner", "services.action_runner", settings.action_runner_port, "/healthz"
        ),
        Component("sms-sender", "services.sms_sender", settings.sender_port, "/healthz"),
        Component(
            "dashboard",
            "services.control.dashboard",
            settings.dashboard_port,
            "/healthz",
            ("--host", HOST, "--port", str(settings.dashboard_port)),
        ),
    ]


def child_environment(
    settings: StackSettings, base: Mapping[str, str], webhook_secret: str | None = None
) -> dict[str, str]:
    """The environment every service of the stack gets: one broker, one prefix, our ports;
    local development (``SMSFLOW_ENV=dev``) with the stack's own webhook secret, unless
    the caller's environment names secrets of its own."""
    env = dict(base)
    if webhook_secret is not None:
        env["SMSFLOW_ENV"] = "dev"
        env.setdefault("SMSFLOW_WEBHOOK_SECRET", webhook_secret)
        env.setdefault("SMSFLOW_TWILIO_AUTH_TOKEN", webhook_secret)
        env.setdefault("SMSFLOW_LINK_SECRET", webhook_secret)
    env.update(
        {
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SMSFLOW_PARTITIONS": str(settings.partitions),
            "SMSFLOW_DATA_DIR": str(settings.data_dir),
            "SMSFLOW_ENROLLER_PORT": str(settings.enroller_port),
            "SMSFLOW_ACTION_RUNNER_PORT": str(settings.action_runner_port),
            "SMSFLOW_SENDER_PORT": str(settings.sender_port),
            "SMSFLOW_DASHBOARD_PORT": str(settings.dashboard_port),
            "SMSFLOW_GATEWAY_SIM_PORT": str(settings.gateway_sim_port),
            "SMSFLOW_GATEWAY_URL": settings.gateway_url,
            "SMSFLOW_SENDER_WEBHOOK_URL": settings.inbound_webhook,
            "SMSFLOW_SENDER_PUBLIC_URL": settings.sender_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
