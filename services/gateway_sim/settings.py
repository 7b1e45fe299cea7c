"""The simulator's settings, built once by the entrypoint and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .faults import FaultConfig

InboundApi = Literal["http", "twilio"]

DEFAULT_INBOUND_WEBHOOK = "http://127.0.0.1:8026/webhooks/inbound"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32


@dataclass(frozen=True)
class SimSettings:
    host: str = "127.0.0.1"
    port: int = 8025  # 0 picks a free port; the start-up line tells which
    seed: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    # Keys are kept this long after their first answer (Stripe keeps them >= 24 h);
    # a retry after that is processed as a new request.
    idempotency_ttl_s: float = 86400.0
    inbound_webhook: str = DEFAULT_INBOUND_WEBHOOK
    inbound_api: InboundApi = "http"
    twilio_auth_token: str = "test-auth-token"
    twilio_account_sid: str = DEFAULT_ACCOUNT_SID  # AccountSid of forwarded inbound replies
    webhook_secret: str = "dev-webhook-secret"
    # Connection failures are retried with backoff (0.25 s doubling, capped at 5 s): about
    # 30 s in all, so delivery reports survive a receiver restart, as with real providers.
    callback_attempts: int = 9
    callback_timeout_s: float = 5.0
