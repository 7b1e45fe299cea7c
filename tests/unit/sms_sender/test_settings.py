"""The sender's secrets: explicit outside dev, and readable from documented file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.sms_sender.settings import SenderSettings

STRONG = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "SMSFLOW_WEBHOOK_SECRET is unset or a published default"),
        ({"webhook_secret": "dev-webhook-secret"}, "published default"),
        ({"webhook_secret": "short"}, "shorter than 16"),
        ({"webhook_secret": STRONG}, None),
        ({"env": "dev"}, None),
        ({"env": "production", "webhook_secret": "dev-webhook-secret"}, "published default"),
        # Only the configured API's key matters.
        ({"gateway_api": "twilio", "webhook_secret": STRONG}, "SMSFLOW_TWILIO_AUTH_TOKEN"),
        ({"gateway_api": "twilio", "twilio_auth_token": "replace-me"}, "published default"),
        ({"gateway_api": "twilio", "twilio_auth_token": STRONG}, None),
    ],
)
def test_secrets_must_be_explicit_outside_dev(
    settings: dict[str, str], problem: str | None
) -> None:
    found = SenderSettings(**settings).secret_problem()  # type: ignore[arg-type]
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize("name", ["webhook_secret", "SMSFLOW_WEBHOOK_SECRET"])
def test_a_secret_file_named_as_documented_is_read(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / name).write_text(STRONG + "\n")
    (tmp_path / "twilio_auth_token").write_text("tok-from-file")
    monkeypatch.delenv("SMSFLOW_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SMSFLOW_TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("SMSFLOW_SECRETS_DIR", str(tmp_path))
    settings = SenderSettings.from_env()
    assert isinstance(settings, SenderSettings)
    assert settings.webhook_secret.get_secret_value() == STRONG
    assert settings.twilio_auth_token.get_secret_value() == "tok-from-file"
    assert settings.secret_problem() is None


def test_the_environment_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "webhook_secret").write_text("from-the-file-0000")
    monkeypatch.setenv("SMSFLOW_WEBHOOK_SECRET", STRONG)
    monkeypatch.setenv("SMSFLOW_SECRETS_DIR", str(tmp_path))
    assert SenderSettings.from_env().webhook_secret.get_secret_value() == STRONG  # type: ignore[attr-defined]
