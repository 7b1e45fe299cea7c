"""A service as a real process for tests: ``python -m <module>`` on a free loopback port,
against a test's topic prefix, ready once its health check answers, output in a log file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from services.common.settings import KafkaSettings
from services.control.ports import free_port
from tests.support import stop_process

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """This process's environment without any ``SMSFLOW_`` variable of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SMSFLOW_")}


def run_once(
    module: str, env: Mapping[str, str], timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m module`` to its end (a service that refuses to start), output captured."""
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


class ServiceProcess:
    """One service, started (and restarted) with the same environment, port and log folder.

    A subclass names the ``module``, the ``port_variable`` that tells it its port, and the
    ``base_env`` it always runs with. The environment holds no ``SMSFLOW_`` variable of the
    one running the tests: only the broker and topic prefix of ``settings``, the port, the
    data dir, ``base_env`` and ``env``.
    """

    module: ClassVar[str]
    name: ClassVar[str]
    port_variable: ClassVar[str | None] = None
    base_env: ClassVar[Mapping[str, str]] = {}
    health_path: ClassVar[str] = "/healthz"

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.args = list(args)
        self.env = clean_env()
        if settings is not None:
            self.env["SMSFLOW_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
            self.env["SMSFLOW_TOPIC_PREFIX"] = settings.topic_prefix
        if self.port_variable is not None:
            self.env[self.port_variable] = str(self.port)
        if data_dir is not None:
            self.env["SMSFLOW_DATA_DIR"] = str(data_dir)
        self.env |= {**self.base_env, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        """The output of the latest start (each start writes a file of its own)."""
        return self.log_dir / f"{self.name}-{max(self.starts, 1)}.log"

    def start(self, timeout_s: float = 90.0, wait: bool = True) -> Self:
        self.starts += 1
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not healthy after {timeout_s}s:\n{self.output()}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=1) as answer:
                return bool(answer.status == 200) and self.ready(answer.read())
        except (OSError, ValueError):  # not listening yet, 503 while starting, half a body
            return False

    def ready(self, health: bytes) -> bool:
        """Whether a 200 from the health check means ready (a service may say more in it)."""
        return True

    def read(self, path: str, timeout_s: float = 10.0) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as answer:
            return str(answer.read().decode())

    def read_json(self, path: str, timeout_s: float = 30.0) -> Any:
        return json.loads(self.read(path, timeout_s))

    def post_json(self, path: str, payload: Any, timeout_s: float = 30.0) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.load(answer)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a lost node: no shutdown, no last commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout_s``); the exit code, None if never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            return stop_process(self.process, timeout_s)
        return self.process.returncode

    def restart(self, kill: bool = False, timeout_s: float = 90.0) -> Self:
        """Stopped (or killed) and started again with the same port, environment and data."""
        self.kill() if kill else self.stop()
        return self.start(timeout_s)

    def output(self, tail: int | None = 6000) -> str:
        """The latest start's output, its last ``tail`` characters (all of it for None)."""
        path = self.log_path
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text
