"""dev up's webhook secret: one per state dir, private, handed to the simulator and sender."""

from __future__ import annotations

import stat
from pathlib import Path

from services.action_runner.settings import RunnerSettings
from services.control.dev_secret import dev_webhook_secret
from services.control.stack import StackSettings, child_environment
from services.sms_sender.settings import SenderSettings


def test_one_random_secret_per_state_dir_readable_only_by_its_owner(tmp_path: Path) -> None:
    first = dev_webhook_secret(tmp_path / "a")
    assert len(first) == 64
    assert dev_webhook_secret(tmp_path / "a") == first  # kept across runs
    assert dev_webhook_secret(tmp_path / "b") != first
    mode = stat.S_IMODE((tmp_path / "a" / "webhook-secret").stat().st_mode)
    assert mode == 0o600


def test_an_emptied_secret_file_is_made_anew(tmp_path: Path) -> None:
    (tmp_path / "webhook-secret").write_text("\n")
    assert len(dev_webhook_secret(tmp_path)) == 64


def test_the_stack_runs_as_dev_with_its_secret_unless_the_caller_names_one(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path)
    env = child_environment(settings, {"PATH": "/bin"}, "s" * 64)
    assert env["SMSFLOW_ENV"] == "dev"
    assert env["SMSFLOW_WEBHOOK_SECRET"] == env["SMSFLOW_TWILIO_AUTH_TOKEN"] == "s" * 64
    assert env["SMSFLOW_LINK_SECRET"] == "s" * 64
    own = child_environment(settings, {"SMSFLOW_WEBHOOK_SECRET": "mine"}, "s" * 64)
    assert own["SMSFLOW_WEBHOOK_SECRET"] == "mine"
    assert "SMSFLOW_ENV" not in child_environment(settings, {})


def test_the_generated_secret_would_pass_even_outside_dev(tmp_path: Path) -> None:
    settings = SenderSettings(webhook_secret=dev_webhook_secret(tmp_path))
    assert settings.env != "dev"
    assert settings.secret_problem() is None


def test_the_runner_refuses_the_published_link_secret_outside_dev() -> None:
    assert RunnerSettings(env="dev").secret_problem() is None
    problem = RunnerSettings(env="").secret_problem()
    assert problem is not None
    assert "SMSFLOW_LINK_SECRET" in problem
    assert "shorter" in str(RunnerSettings(env="", link_secret="short").secret_problem())
    assert RunnerSettings(env="", link_secret="x" * 32).secret_problem() is None
