"""Processes the local stack started: pid files, ownership checks, start and stop.

A pid file is trusted only while its process is alive *and* its command line still
contains what we started (``marker``), so a stale file never leads to killing an
unrelated process that happens to reuse the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Stopped(StrEnum):
    TERMINATED = "stopped"  # exited after SIGTERM
    KILLED = "killed"  # needed SIGKILL
    STALE = "stale pid file removed"
    NOT_RUNNING = "not running"


def command_line(pid: int) -> str | None:
    """The process's command line; None when there is no such process, "" when it has
    none to show (a zombie, or a process in the middle of exec)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        raw = b""
    if raw or Path("/proc/self/cmdline").exists():
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    try:  # no procfs (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" in status


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # our own exited child is a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return not _zombie(pid)


@dataclass(frozen=True)
class ProcessTable:
    """``<state>/run/<name>.pid`` and ``<state>/logs/<name>.log`` for each process."""

    state_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def recorded_pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def owned(self, pid: int, marker: str) -> bool:
        for _ in range(20):
            line = command_line(pid)
            if line is None or not alive(pid):
                return False
            if line:
                return marker in line
            time.sleep(0.05)  # in the middle of exec: the new command line comes shortly
        return False

    def running(self, name: str, marker: str) -> int | None:
        """The pid of our live process, cleaning a stale pid file on the way."""
        pid = self.recorded_pid(name)
        if pid is None:
            return None
        if self.owned(pid, marker):
            return pid
        self.pid_file(name).unlink(missing_ok=True)
        return None

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start in a session of its own (it outlives the CLI), output to its log file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(name).open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file(name).write_text(f"{process.pid}\n")
        return process

    def stop(self, name: str, marker: str, timeout_s: float = 15.0) -> Stopped:
        """SIGTERM to the process group, wait, then SIGKILL; only if the pid is ours."""
        pid = self.recorded_pid(name)
        if pid is None:
            return Stopped.NOT_RUNNING
        if not self.owned(pid, marker):
            self.pid_file(name).unlink(missing_ok=True)
            return Stopped.STALE
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        result = Stopped.TERMINATED
        if alive(pid):
            _signal(pid, signal.SIGKILL)
            result = Stopped.KILLED
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
        self.pid_file(name).unlink(missing_ok=True)
        return result

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal(pid: int, signum: int) -> None:
    """The whole group when the process leads one (we start each in its own session)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass
