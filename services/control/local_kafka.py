"""A local single-node Apache Kafka broker (KRaft, broker+controller) without Docker.

The broker's jars come from, in order: ``KAFKA_HOME`` (an unpacked Apache distribution),
a cache filled by Maven from ``deploy/kafka/pom.xml``, or the Apache binary tarball.
The cache lives outside the repository (``$XDG_CACHE_HOME/smsflow``), so clones share it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.control.processes import alive

KAFKA_VERSION = "4.0.2"
BROKER_MAIN = "kafka.Kafka"
SCALA_VERSION = "2.13"
POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
TARBALL_URL = f"https://archive.apache.org/dist/kafka/{KAFKA_VERSION}/kafka_{SCALA_VERSION}-{KAFKA_VERSION}.tgz"


class BrokerError(RuntimeError):
    """Something the user must fix (missing Java, a port in use); the message says what."""


@dataclass(frozen=True)
class LocalBroker:
    state_dir: Path  # holds data/, server.properties, kafka.log and kafka.pid
    port: int = 9092
    controller_port: int | None = None
    host: str = "127.0.0.1"
    heap: str = "1g"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "kafka" / "data"

    @property
    def properties_file(self) -> Path:
        return self.state_dir / "kafka" / "server.properties"

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 90.0) -> bool:
        """Start unless running; returns True when it started a broker. Waits until ready."""
        if self.pid() is not None:
            self.wait_ready(timeout_s)
            return False
        if port_open(self.host, self.port):
            raise BrokerError(
                f"port {self.port} is in use by another process; set a different port "
                "or SMSFLOW_KAFKA_BOOTSTRAP_SERVERS to use that broker"
            )
        java = require_java()
        classpath = f"{provision()}/*"
        self._write_properties()
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    java,
                    "-Xms256m",
                    f"-Xmx{self.heap}",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    "-cp",
                    classpath,
                    BROKER_MAIN,
                    str(self.properties_file.resolve()),  # stop() recognises it by this
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it
            )
        self.pid_file.write_text(str(process.pid))
        try:
            self.wait_ready(timeout_s, process)
        except BaseException:
            self.stop()
            raise
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker this state dir started; returns True when one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def purge(self) -> None:
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        # A stale pid file may name a process that reused the number: never take that one.
        return pid if alive(pid) and runs_broker(pid, self.properties_file) else None

    def wait_ready(self, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {process.returncode}; see {self.log_file}"
                )
            if port_open(self.host, self.port) and broker_answers(self.bootstrap):
                return
            time.sleep(0.5)
        raise BrokerError(f"Kafka not ready after {timeout_s:.0f}s; see {self.log_file}")

    # ------------------------------------------------------------ set-up

    def _write_properties(self) -> None:
        controller = self.controller_port or self.port + 1
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{controller}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": "6",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests and dev stacks join groups constantly: no 3 s wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Keep the log cleaner on (the stores' changelogs are compacted) but small.
            "log.cleaner.dedupe.buffer.size": "33554432",
        }
        self.properties_file.parent.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _format(self, java: str, classpath: str) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                # One argument: a random id may start with "-", which would read as an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(self.properties_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")


# ---------------------------------------------------------------- provisioning


def cache_dir() -> Path:
    base = os.environ.get("SMSFLOW_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smsflow"
    )
    return Path(base)


def provision() -> Path:
    """The folder of broker jars, fetching them the first time."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not libs.is_dir():
            raise BrokerError(f"KAFKA_HOME is set but has no libs/ folder: {home}")
        return libs
    libs = cache_dir() / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").exists():
        return libs
    if shutil.which("mvn") and POM.exists():
        _fetch_with_maven(libs)
    else:
        _fetch_tarball(libs)
    return libs


def _fetch_with_maven(libs: Path) -> None:
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BrokerError(f"Maven could not fetch Kafka {KAFKA_VERSION}: {result.stdout[-2000:]}")
    staging.replace(libs)


def _fetch_tarball(libs: Path) -> None:
    target = libs.parent
    archive = target.with_suffix(".tgz")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        urllib.request.urlretrieve(TARBALL_URL, archive)
    except OSError as exc:
        raise BrokerError(
            "cannot get Kafka: install Maven (mvn) or set KAFKA_HOME to an unpacked "
            f"Apache Kafka {KAFKA_VERSION}, or allow downloads from archive.apache.org ({exc})"
        ) from exc
    with tarfile.open(archive) as tar:
        tar.extractall(target.parent, filter="data")
    archive.unlink()


def require_java() -> str:
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin"))
    java = java or shutil.which("java")
    if not java:
        raise BrokerError("Java 17 or newer is needed to run Kafka: install a JDK or JRE 17+")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    digits = out.split('"')[1].split(".")[0] if '"' in out else "0"
    if digits.isdigit() and int(digits) < 17:
        raise BrokerError(f"Kafka needs Java 17 or newer; found {digits}: install a JDK 17+")
    return java


# ---------------------------------------------------------------- probes


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def broker_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a metadata request succeeds (the port alone opens before the broker is up)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), request_timeout_ms=int(timeout_s * 1000)
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def runs_broker(pid: int, properties_file: Path) -> bool:
    """True when process ``pid`` is a Kafka broker started with ``properties_file``."""
    args = _command_line(pid)
    if not args or BROKER_MAIN not in args:
        return False
    wanted = properties_file.resolve()
    cwd = _working_dir(pid)
    for arg in args[args.index(BROKER_MAIN) + 1 :]:
        path = Path(arg)
        if not path.is_absolute():
            if cwd is None:
                continue
            path = cwd / path
        if path.resolve() == wanted:
            return True
    return False


def _command_line(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # no procfs (macOS): ask ps
        result = subprocess.run(
            ["ps", "-p", str(pid), "-o", "args="], capture_output=True, text=True, check=False
        )
        return result.stdout.split() if result.returncode == 0 else None
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _working_dir(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
