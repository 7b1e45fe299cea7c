from __future__ import annotations

from pathlib import Path

import pytest

from services.control.stack import StackSettings, child_environment, components


def test_ports_and_state_dir_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "SMSFLOW_STATE_DIR": str(tmp_path / "st"),
        "SMSFLOW_GATEWAY_SIM_PORT": "18025",
        "SMSFLOW_ENROLLER_PORT": "16066",
        "SMSFLOW_ACTION_RUNNER_PORT": "16067",
        "SMSFLOW_SENDER_PORT": "18026",
        "SMSFLOW_DASHBOARD_PORT": "18030",
        "SMSFLOW_TOPIC_PREFIX": "t1.",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SMSFLOW_KAFKA_PORT", "19092")
    import os

    settings = StackSettings.from_environ(os.environ)
    assert settings.state_dir == (tmp_path / "st").resolve()
    assert settings.external_broker is False
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert [(c.name, c.port) for c in components(settings)] == [
        ("gateway-sim", 18025),
        ("enroller", 16066),
        ("action-runner", 16067),
        ("sms-sender", 18026),
        ("dashboard", 18030),
    ]
    sim = components(settings)[0]
    assert sim.argv("py")[-2:] == ["--inbound-webhook", "http://127.0.0.1:18026/webhooks/inbound"]
    env = child_environment(settings, {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["SMSFLOW_TOPIC_PREFIX"] == "t1."
    assert env["SMSFLOW_DATA_DIR"] == str(settings.state_dir / "data")
    assert env["SMSFLOW_GATEWAY_URL"] == "http://127.0.0.1:18025"
    assert env["SMSFLOW_SENDER_PUBLIC_URL"] == "http://127.0.0.1:18026"
    assert env["SMSFLOW_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert env["SMSFLOW_DASHBOARD_PORT"] == "18030"
    assert settings.dashboard_url == "http://127.0.0.1:18030/"


def test_a_named_broker_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.5:9092")
    settings = StackSettings.from_environ({"SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": "10.0.0.5:9092"})
    assert settings.external_broker is True
    assert settings.kafka_bootstrap_servers == "10.0.0.5:9092"


def test_markers_name_the_module_we_start() -> None:
    for component in components(StackSettings()):
        assert component.marker in " ".join(component.argv("python"))
