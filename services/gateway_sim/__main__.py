"""``smsflow gateway-sim`` / ``python -m services.gateway_sim``: run the simulator.

Every flag may also come from ``SMSFLOW_SIM_<FLAG>`` (``--fail-rate`` from
``SMSFLOW_SIM_FAIL_RATE``); flags win over the environment. A few settings
shared with the rest of smsflow fall back to its variables: the inbound webhook
to ``SMSFLOW_SENDER_WEBHOOK_URL``, the Twilio token to ``SMSFLOW_TWILIO_AUTH_TOKEN``,
the webhook secret to ``SMSFLOW_WEBHOOK_SECRET`` and the inbound API to
``SMSFLOW_GATEWAY_API``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.logging import configure_logging

from .faults import FaultConfig
from .settings import DEFAULT_ACCOUNT_SID, DEFAULT_INBOUND_WEBHOOK, SimSettings

ENV_PREFIX = "SMSFLOW_SIM_"


@dataclass(frozen=True)
class Option:
    flag: str
    convert: Callable[[str], Any]
    default: Any
    help: str
    fallback_env: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return port


OPTIONS = (
    Option("--host", str, "127.0.0.1", "address to bind"),
    Option("--port", _port, 8025, "port to bind (0 picks a free one)"),
    Option("--fail-rate", float, 0.0, "fraction answered 500/503 without accepting"),
    Option("--throttle-rate", float, 0.0, "fraction answered 429 with Retry-After"),
    Option("--retry-after", int, 1, "Retry-After seconds on 429"),
    Option("--timeout-rate", float, 0.0, "fraction accepted but answered after --timeout-delay-ms"),
    Option("--timeout-delay-ms", float, 5000.0, "how late timeout-fault answers come"),
    Option(
        "--error-after-accept-rate",
        float,
        0.0,
        "fraction accepted and delivered but answered 502, as by a proxy in front",
    ),
    Option("--down", _flag, False, "true: close every provider request without an answer"),
    Option("--latency-ms", float, 0.0, "latency added to every provider request"),
    Option("--seed", int, None, "seed for deterministic faults"),
    Option("--undelivered-rate", float, 0.0, "fraction of accepted messages ending undelivered"),
    Option("--callback-delay-ms", float, 50.0, "delay between the sent and final callbacks"),
    Option(
        "--idempotency-ttl-s",
        float,
        86400.0,
        "seconds an Idempotency-Key is kept after its first answer; later it is a new request",
    ),
    Option(
        "--inbound-webhook",
        str,
        DEFAULT_INBOUND_WEBHOOK,
        "URL inbound replies are forwarded to",
        ("SMSFLOW_SENDER_WEBHOOK_URL",),
    ),
    Option(
        "--inbound-api",
        str,
        "http",
        "shape of forwarded inbound replies",
        ("SMSFLOW_GATEWAY_API",),
        ("http", "twilio"),
    ),
    Option(
        "--twilio-auth-token",
        str,
        "test-auth-token",
        "Twilio API password and webhook signing key",
        ("SMSFLOW_TWILIO_AUTH_TOKEN",),
    ),
    Option(
        "--twilio-account-sid",
        str,
        DEFAULT_ACCOUNT_SID,
        "AccountSid of forwarded inbound replies (twilio mode)",
        ("SMSFLOW_TWILIO_ACCOUNT_SID",),
    ),
    Option(
        "--webhook-secret",
        str,
        "dev-webhook-secret",
        "HMAC secret of X-Smsflow-Signature",
        ("SMSFLOW_WEBHOOK_SECRET",),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow gateway-sim",
        description="SMS gateway simulator (generic + Twilio-shaped APIs, faults, callbacks).",
        epilog="Each flag may also be set as SMSFLOW_SIM_<FLAG>; flags win.",
    )
    for option in OPTIONS:
        shown = option.default if option.default is not None else "random"
        parser.add_argument(
            option.flag,
            type=option.convert,
            choices=option.choices,
            default=None,
            help=f"{option.help} (default: {shown}; env {option.env})",
        )
    return parser


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> SimSettings:
    """Flags, then SMSFLOW_SIM_*, then the shared variables, then defaults."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, option.dest)
        if value is None:
            value = option.default
            for name in (option.env, *option.fallback_env):
                if environ.get(name):
                    try:
                        value = option.convert(environ[name])
                    except ValueError as exc:
                        raise ValueError(f"{name}: {exc}") from exc
                    break
        if option.choices is not None and value not in option.choices:
            raise ValueError(f"{option.flag} must be one of {', '.join(option.choices)}")
        values[option.dest] = value
    faults = FaultConfig(
        fail_rate=values["fail_rate"],
        throttle_rate=values["throttle_rate"],
        timeout_rate=values["timeout_rate"],
        undelivered_rate=values["undelivered_rate"],
        latency_ms=values["latency_ms"],
        timeout_delay_ms=values["timeout_delay_ms"],
        callback_delay_ms=values["callback_delay_ms"],
        retry_after_s=values["retry_after"],
        error_after_accept_rate=values["error_after_accept_rate"],
        down=values["down"],
    )
    if values["idempotency_ttl_s"] <= 0:
        raise ValueError("--idempotency-ttl-s must be positive")
    return SimSettings(
        host=values["host"],
        port=values["port"],
        seed=values["seed"],
        faults=faults,
        idempotency_ttl_s=values["idempotency_ttl_s"],
        inbound_webhook=values["inbound_webhook"],
        inbound_api=values["inbound_api"],
        twilio_auth_token=values["twilio_auth_token"],
        twilio_account_sid=values["twilio_account_sid"],
        webhook_secret=values["webhook_secret"],
    )


async def _run(settings: SimSettings) -> None:
    from .app import serve  # aiohttp only once we really serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(args, os.environ)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging("gateway-sim")
    try:
        asyncio.run(_run(settings))
    except OSError as exc:  # e.g. the port is taken
        print(f"gateway-sim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
