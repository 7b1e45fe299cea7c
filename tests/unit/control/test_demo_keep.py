"""``make demo``'s ending: by default the stack stops; ``--keep`` leaves it up and ends with
the dashboard's address (the stack's I/O is replaced; the rest of the demo runs as is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.control import demo
from services.control.dev import Started


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    calls: list[str] = []
    monkeypatch.setenv("SMSFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SMSFLOW_DASHBOARD_PORT", "18030")
    monkeypatch.delenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(demo.Stack, "status", lambda self: [])
    monkeypatch.setattr(demo.Stack, "purge_data", lambda self: None)
    monkeypatch.setattr(demo.Stack, "up", lambda self: calls.append("up") or Started())
    monkeypatch.setattr(demo.Stack, "down", lambda self, purge=False: calls.append("down"))
    monkeypatch.setattr(demo, "apply_paths", lambda settings, paths: 0)
    monkeypatch.setattr(demo, "play", lambda settings, story, sender, region: True)
    monkeypatch.setattr(demo, "show_gateway", lambda settings: None)
    return calls


def test_by_default_the_stack_stops(stubbed: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main([]) == 0
    assert stubbed == ["up", "down"]
    assert "dashboard: http" not in capsys.readouterr().out


def test_keep_ends_with_the_dashboard_address(
    stubbed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--keep"]) == 0
    assert stubbed == ["up"]  # still running
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "dashboard: http://127.0.0.1:18030/"
    assert "dev down --purge" in lines[-2]
