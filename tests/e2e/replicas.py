"""Several instances of each service on one broker, as processes, sharing partitions.

Each instance set is started by ``smsflow dev up NAME...`` with a state dir (pid files,
logs, data) and health/webhook ports of its own and the same topic prefix, so the instances
of a service join one consumer group. The first set also runs the gateway simulator that
every sender calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from services.control.dev_secret import dev_webhook_secret
from services.control.ports import free_port
from services.control.processes import ProcessTable
from services.control.stack import StackSettings, components
from tests.e2e.stack import SERVICES as LOGGED

SERVICES = ("enroller", "action-runner", "sms-sender")
GATEWAY = "gateway-sim"


class Replicas:
    def __init__(
        self,
        bootstrap: str,
        root: Path,
        count: int = 2,
        partitions: int = 6,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        prefix = f"so{uuid.uuid4().hex[:8]}."
        gateway_port = str(free_port())
        # One secret for the simulator (which signs webhooks) and every sender (which checks).
        secret = dev_webhook_secret(root)
        self.envs = []
        for index in range(count):
            env = dict(os.environ)
            env.update(environ or {})
            env.update(
                {
                    "SMSFLOW_STATE_DIR": str(root / f"instance-{index}"),
                    "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "SMSFLOW_TOPIC_PREFIX": prefix,
                    "SMSFLOW_PARTITIONS": str(partitions),
                    "SMSFLOW_GATEWAY_SIM_PORT": gateway_port,
                    "SMSFLOW_ENROLLER_PORT": str(free_port()),
                    "SMSFLOW_ACTION_RUNNER_PORT": str(free_port()),
                    "SMSFLOW_SENDER_PORT": str(free_port()),
                    "SMSFLOW_DASHBOARD_PORT": str(free_port()),
                    "SMSFLOW_WEBHOOK_SECRET": secret,
                    "SMSFLOW_TWILIO_AUTH_TOKEN": secret,
                }
            )
            self.envs.append(env)
        self.settings = StackSettings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            partitions=partitions,
            gateway_sim_port=int(gateway_port),
        )
        self.tables = [ProcessTable(Path(env["SMSFLOW_STATE_DIR"])) for env in self.envs]
        self.markers = {c.name: c.marker for c in components(self.settings)}

    @property
    def gateway_url(self) -> str:
        return self.settings.gateway_url

    def smsflow(self, index: int, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.envs[index],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def up(self) -> None:
        """Every instance set at once (``dev up`` returns once its parts answer)."""
        started = [
            self.smsflow(index, "dev", "up", *((GATEWAY, *SERVICES) if index == 0 else SERVICES))
            for index in range(len(self.envs))
        ]
        for process in started:
            out, _ = process.communicate(timeout=300)
            assert process.returncode == 0, f"{out}\n{self.logs()}"

    def down(self) -> None:
        for index in reversed(range(len(self.envs))):
            self.smsflow(index, "dev", "down", GATEWAY, *SERVICES).communicate(timeout=120)

    def pid(self, name: str, index: int) -> int | None:
        """The pid of a live instance, None once it is gone."""
        return self.tables[index].running(name, self.markers[name])

    def kill(self, name: str, index: int) -> int:
        """kill -9, as a lost node: no shutdown, no commit, no leaving the group."""
        pid = self.pid(name, index)
        assert pid is not None, f"{name} #{index} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def logs(self, lines: int = 30) -> str:
        parts = []
        for index, table in enumerate(self.tables):
            for name in LOGGED:
                text = table.log_tail(name, lines)
                if text:
                    parts.append(f"--- {name} #{index}\n{text}")
        return "\n".join(parts)
