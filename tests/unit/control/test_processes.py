"""The supervisor's pid handling: only processes it started are ever signalled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.control.processes import ProcessTable, Stopped, alive, command_line

SLEEPER = "import time; time.sleep(60)"
MARKER = "-c import time"


@pytest.fixture
def table(tmp_path: Path) -> ProcessTable:
    return ProcessTable(tmp_path / "state")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process nobody's pid file should make us kill."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # stranger"])
    yield process
    process.kill()
    process.wait()


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_spawn_writes_pid_and_log_and_stop_terminates(table: ProcessTable) -> None:
    env = dict(os.environ, GREETING="hello")
    code = "import os, sys, time; print(os.environ['GREETING'], flush=True); time.sleep(60)"
    process = table.spawn("svc", [sys.executable, "-c", code], env)
    assert table.recorded_pid("svc") == process.pid
    assert table.running("svc", "-c import os") == process.pid
    deadline = time.monotonic() + 5
    while "hello" not in table.log_tail("svc") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert table.log_tail("svc") == "hello"
    assert os.getpgid(process.pid) == process.pid  # a session of its own
    assert table.stop("svc", "-c import os") is Stopped.TERMINATED
    assert wait_gone(process.pid)
    process.wait(timeout=5)  # stop() already reaped it (we are its parent here)
    assert not table.pid_file("svc").exists()


def test_a_stale_pid_file_is_cleaned_without_signalling(table: ProcessTable) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    table.run_dir.mkdir(parents=True)
    table.pid_file("svc").write_text(str(gone.pid))
    assert table.running("svc", MARKER) is None
    assert not table.pid_file("svc").exists()
    table.pid_file("svc").write_text(str(gone.pid))
    assert table.stop("svc", MARKER) is Stopped.STALE
    assert table.stop("svc", MARKER) is Stopped.NOT_RUNNING


def test_a_reused_pid_of_an_unrelated_process_is_never_killed(
    table: ProcessTable, stranger: subprocess.Popen[bytes]
) -> None:
    table.run_dir.mkdir(parents=True)
    table.pid_file("enroller").write_text(str(stranger.pid))
    assert table.running("enroller", "-m services.enroller") is None
    table.pid_file("enroller").write_text(str(stranger.pid))
    assert table.stop("enroller", "-m services.enroller") is Stopped.STALE
    time.sleep(0.2)
    assert stranger.poll() is None, "an unrelated process was signalled"


def test_garbage_in_a_pid_file_counts_as_not_running(table: ProcessTable) -> None:
    table.run_dir.mkdir(parents=True)
    table.pid_file("svc").write_text("not a pid")
    assert table.running("svc", MARKER) is None
    assert table.stop("svc", MARKER) is Stopped.NOT_RUNNING


def test_a_process_ignoring_sigterm_is_killed_with_its_children(table: ProcessTable) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = table.spawn("stubborn", [sys.executable, "-c", code], os.environ)
    deadline = time.monotonic() + 5
    while not table.log_tail("stubborn").strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(table.log_tail("stubborn").strip())
    assert table.stop("stubborn", "-c import signal", timeout_s=0.5) is Stopped.KILLED
    process.wait(timeout=5)
    assert wait_gone(child), "the child in the process group survived"


def test_command_line_of_a_live_and_a_missing_process() -> None:
    line = command_line(os.getpid())
    assert line is not None
    assert "python" in line.lower()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert command_line(gone.pid) is None
