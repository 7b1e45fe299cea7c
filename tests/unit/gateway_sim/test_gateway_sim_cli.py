"""Settings from flags and SMSFLOW_SIM_* variables: flags win, then the environment."""

from __future__ import annotations

import pytest

from services.gateway_sim.__main__ import build_parser, resolve_settings
from services.gateway_sim.faults import FaultConfig
from services.gateway_sim.settings import DEFAULT_INBOUND_WEBHOOK, SimSettings


def _settings(argv: list[str], environ: dict[str, str] | None = None) -> SimSettings:
    return resolve_settings(build_parser().parse_args(argv), environ or {})


def test_defaults() -> None:
    assert _settings([]) == SimSettings()
    assert _settings([]).faults == FaultConfig()
    assert _settings([]).inbound_webhook == DEFAULT_INBOUND_WEBHOOK


def test_flags() -> None:
    settings = _settings(
        [
            "--host", "0.0.0.0", "--port", "0", "--fail-rate", "0.1", "--throttle-rate", "0.2",
            "--retry-after", "3", "--timeout-rate", "0.05", "--timeout-delay-ms", "800",
            "--latency-ms", "20", "--seed", "42", "--undelivered-rate", "0.5",
            "--callback-delay-ms", "10", "--idempotency-ttl-s", "60",
            "--inbound-webhook", "http://127.0.0.1:9/in", "--inbound-api", "twilio",
            "--twilio-auth-token", "tok", "--webhook-secret", "sec",
        ]
    )  # fmt: skip
    assert settings.host == "0.0.0.0"
    assert settings.port == 0
    assert settings.seed == 42
    assert settings.faults == FaultConfig(
        fail_rate=0.1,
        throttle_rate=0.2,
        timeout_rate=0.05,
        undelivered_rate=0.5,
        latency_ms=20,
        timeout_delay_ms=800,
        callback_delay_ms=10,
        retry_after_s=3,
    )
    assert settings.idempotency_ttl_s == 60
    assert settings.inbound_webhook == "http://127.0.0.1:9/in"
    assert settings.inbound_api == "twilio"
    assert settings.twilio_auth_token == "tok"
    assert settings.webhook_secret == "sec"


@pytest.mark.parametrize(
    ("argv", "environ", "field", "expected"),
    [
        ([], {"SMSFLOW_SIM_FAIL_RATE": "0.25"}, "fail_rate", 0.25),
        (["--fail-rate", "0.5"], {"SMSFLOW_SIM_FAIL_RATE": "0.25"}, "fail_rate", 0.5),
        ([], {"SMSFLOW_SIM_PORT": "9000"}, "port", 9000),
        ([], {"SMSFLOW_SIM_SEED": "3"}, "seed", 3),
        ([], {"SMSFLOW_SENDER_WEBHOOK_URL": "http://h/in"}, "inbound_webhook", "http://h/in"),
        (
            [],
            {
                "SMSFLOW_SENDER_WEBHOOK_URL": "http://h/in",
                "SMSFLOW_SIM_INBOUND_WEBHOOK": "http://s",
            },
            "inbound_webhook",
            "http://s",
        ),
        ([], {"SMSFLOW_GATEWAY_API": "twilio"}, "inbound_api", "twilio"),
        (["--inbound-api", "http"], {"SMSFLOW_GATEWAY_API": "twilio"}, "inbound_api", "http"),
        ([], {"SMSFLOW_TWILIO_AUTH_TOKEN": "t"}, "twilio_auth_token", "t"),
        ([], {"SMSFLOW_WEBHOOK_SECRET": "s"}, "webhook_secret", "s"),
        ([], {"SMSFLOW_SIM_WEBHOOK_SECRET": "s2"}, "webhook_secret", "s2"),
        ([], {"SMSFLOW_SIM_FAIL_RATE": ""}, "fail_rate", 0.0),
    ],
)
def test_precedence(argv: list[str], environ: dict[str, str], field: str, expected: object) -> None:
    settings = _settings(argv, environ)
    holder = settings.faults if hasattr(settings.faults, field) else settings
    assert getattr(holder, field) == expected


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ([], {"SMSFLOW_SIM_PORT": "abc"}, "SMSFLOW_SIM_PORT"),
        ([], {"SMSFLOW_SIM_PORT": "70000"}, "port"),
        ([], {"SMSFLOW_GATEWAY_API": "grpc"}, "--inbound-api"),
        (["--fail-rate", "1.5"], {}, "fail_rate"),
        (["--fail-rate", "0.6", "--throttle-rate", "0.6"], {}, "must not exceed"),
        (["--idempotency-ttl-s", "0"], {}, "positive"),
    ],
)
def test_invalid_values(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(argv, environ)


def test_main_exits_2_on_invalid_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from services.gateway_sim.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--fail-rate", "7"])
    assert exc.value.code == 2
    assert "fail_rate" in capsys.readouterr().err


def test_outage_and_proxy_error_flags() -> None:
    settings = _settings(["--down", "true", "--error-after-accept-rate", "0.3"])
    assert settings.faults.down is True
    assert settings.faults.error_after_accept_rate == 0.3
    assert _settings([], {"SMSFLOW_SIM_DOWN": "false"}).faults.down is False
    with pytest.raises(ValueError, match="true or false"):
        _settings([], {"SMSFLOW_SIM_DOWN": "maybe"})
