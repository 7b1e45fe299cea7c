"""``smsflow kafka stop`` stops the broker its pid file names, never a process that reused
the number."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.control.local_kafka import LocalBroker, runs_broker


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def sleeper(*args: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """A process whose command line ends with ``args`` (python ignores them)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", *args], cwd=cwd
    )
    # Until the child has exec'd, /proc shows the parent's command line.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"time.sleep(60)" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return process


def broker_with_pid(tmp_path: Path, pid: int) -> LocalBroker:
    broker = LocalBroker(state_dir=tmp_path / "state", port=1)
    broker.pid_file.parent.mkdir(parents=True)
    broker.pid_file.write_text(str(pid))
    return broker


def test_a_stale_pid_reused_by_another_process_is_left_alone(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    other = sleeper()
    processes.append(other)
    broker = broker_with_pid(tmp_path, other.pid)
    assert broker.pid() is None
    assert broker.stop() is False
    assert other.poll() is None  # still running
    assert not broker.pid_file.exists()  # the stale file is gone


def test_another_state_dirs_broker_is_left_alone(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    other = sleeper("kafka.Kafka", str(tmp_path / "elsewhere" / "server.properties"))
    processes.append(other)
    broker = broker_with_pid(tmp_path, other.pid)
    assert broker.stop() is False
    assert other.poll() is None


def test_the_broker_of_this_state_dir_is_stopped(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    broker = LocalBroker(state_dir=tmp_path / "state", port=1)
    # Started with a path relative to its working directory, as older versions did.
    relative = broker.properties_file.relative_to(tmp_path)
    ours = sleeper("kafka.Kafka", str(relative), cwd=tmp_path)
    processes.append(ours)
    assert runs_broker(ours.pid, broker.properties_file)
    broker = broker_with_pid(tmp_path, ours.pid)
    assert broker.pid() == ours.pid
    assert broker.stop(timeout_s=10) is True
    assert ours.wait(10) is not None
