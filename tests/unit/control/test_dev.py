"""``smsflow dev`` without a broker: status, down after a crash, logs, usage."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.control.dev import Stack, follow_logs, main
from services.control.processes import ProcessTable
from services.control.stack import StackSettings, components


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(
        state_dir=tmp_path,
        kafka_bootstrap_servers="127.0.0.1:9",
        external_broker=True,
        gateway_sim_port=1,
        enroller_port=2,
        action_runner_port=3,
        sender_port=4,
    )


def test_down_after_a_crash_stops_the_rest_and_cleans_stale_files(settings: StackSettings) -> None:
    said: list[str] = []
    stack = Stack(settings, environ={}, say=said.append)
    table = ProcessTable(settings.state_dir)
    sim, enroller, *_ = components(settings)
    # A "gateway-sim" that is really ours (its command line has the marker) ...
    live = table.spawn(
        "gateway-sim",
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", sim.module],
        os.environ,
    )
    # ... and an enroller that crashed, leaving its pid file behind.
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait()
    table.pid_file("enroller").write_text(str(crashed.pid))

    rows = {name: state for name, _, state, _ in stack.status()}
    assert rows["kafka"] == "external"
    assert rows["gateway-sim"] == "not ready"  # running, but nothing answers its health URL
    assert rows["enroller"] == "stopped"
    assert not table.pid_file("enroller").exists()
    assert not stack.all_ready()

    table.pid_file("enroller").write_text(str(crashed.pid))
    stack.down()
    live.wait(timeout=5)
    assert "  gateway-sim   stopped" in said
    assert "  enroller      stale pid file removed" in said
    assert list(table.run_dir.glob("*.pid")) == []
    assert enroller.name == "enroller"


def test_logs_are_prefixed_by_process(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path)
    table.logs_dir.mkdir()
    table.log_file("enroller").write_text("one\ntwo\nthree\n")
    out = io.StringIO()
    follow_logs(table, ["enroller", "sms-sender"], lines=2, follow=False, out=out)
    assert out.getvalue().splitlines() == ["enroller   | two", "enroller   | three"]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["sideways"]) == 2
    assert main(["logs", "nosuch"]) == 2
    assert "unknown nosuch" in capsys.readouterr().err


def test_up_starts_only_parts_it_knows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "nosuch"]) == 2
    assert main(["up", "kafka", "enroller"]) == 2  # a broker is not started on its own
    assert "cannot start nosuch" in capsys.readouterr().err
