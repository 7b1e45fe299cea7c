"""The sender's configuration (``SMSFLOW_*``), built once by the entrypoint."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from services.common.settings import KafkaSettings, secret_problem

GatewayApi = Literal["http", "twilio"]

# The simulator's published defaults: accepted only in local development (``DEV_ENV``).
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
DEV_TWILIO_AUTH_TOKEN = "test-auth-token"


class SenderSettings(KafkaSettings):
    # SMSFLOW_ENV: "dev" for local development; anything else requires explicit secrets.
    env: str = ""
    gateway_url: str = "http://127.0.0.1:8025"
    gateway_api: GatewayApi = "http"
    # HMAC key of X-Smsflow-Signature on the generic API's webhooks: SMSFLOW_WEBHOOK_SECRET,
    # or a file webhook_secret (or SMSFLOW_WEBHOOK_SECRET) in SMSFLOW_SECRETS_DIR.
    webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    twilio_account_sid: str = "AC" + "0" * 32
    # Basic-auth password of the Twilio API and key of X-Twilio-Signature:
    # SMSFLOW_TWILIO_AUTH_TOKEN, or a file twilio_auth_token in SMSFLOW_SECRETS_DIR.
    twilio_auth_token: SecretStr = SecretStr(DEV_TWILIO_AUTH_TOKEN)
    # The base URL the gateway reaches the webhooks at (StatusCallback, signature checks).
    sender_public_url: str = "http://127.0.0.1:8026"
    sender_host: str = "127.0.0.1"
    sender_port: int = 8026
    sender_group_id: str | None = None  # default: "<topic prefix>sms-sender"
    # Requests handed out and not yet finished; above it the consumer pauses.
    sender_max_in_flight: int = 512
    sender_max_attempts: int = 6
    sender_backoff_base_s: float = 0.25
    sender_backoff_cap_s: float = 30.0
    sender_connect_timeout_s: float = 5.0
    # How long an answer may take once the request has left; then the outcome is ambiguous.
    sender_request_timeout_s: float = 10.0
    # How long an ambiguous send to an API without de-duplication (Twilio) waits for a
    # delivery callback before it is failed as ``ambiguous_outcome`` (never re-sent).
    sender_ambiguous_wait_s: float = 900.0
    # Per sender number; 0 disables a limit.
    sender_messages_per_s: float = 5000.0
    sender_segments_per_s: float = 5000.0
    # An SMS the gateway has not taken this long after it was requested fails; until then an
    # unreachable gateway or a long Retry-After is waited out (status ``deferred``).
    sender_give_up_after_s: float = 86400.0
    # How long the gateway keeps an Idempotency-Key (the simulator and Stripe: 24 h); a resend
    # after that could be a second SMS, so it is not made.
    sender_gateway_idempotency_window_s: float = 86400.0
    # Circuit breaker: failed calls within 5 s (and >= 90 % of the calls) that open it, and
    # its first / longest cool-down.
    sender_breaker_threshold: int = 10
    sender_breaker_cooldown_s: float = 1.0
    sender_breaker_max_cooldown_s: float = 15.0
    # Where the ledger's on-disk store lives (a fresh directory under it per process;
    # default: the system's temporary directory), and how many settled keys stay in memory.
    sender_state_dir: str | None = None
    sender_ledger_recent_keys: int = 50_000
    # Requests claiming more segments (or with a longer body) are dead-lettered.
    sender_max_segments: int = 10
    sender_commit_interval_s: float = 0.5
    # A member that died (kill -9) holds its partitions until this runs out.
    sender_session_timeout_ms: int = 10000
    # On a rebalance or shutdown, how long in-flight requests may take to finish.
    sender_drain_wait_s: float = 20.0
    # How long a webhook waits for Kafka to acknowledge what it publishes; then it answers
    # 503 so the provider retries (Twilio gives up on a webhook after 15 s).
    sender_webhook_publish_timeout_s: float = 10.0
    # Inbound replies already published, by provider message id: how many and how far back
    # (sms-inbound's retention) are remembered, so a replayed reply publishes nothing.
    sender_reply_dedup_max: int = 100_000
    sender_reply_dedup_window_s: float = 7 * 24 * 3600.0

    @property
    def group_id(self) -> str:
        return self.sender_group_id or f"{self.topic_prefix}sms-sender"

    @property
    def public_url(self) -> str:
        return self.sender_public_url.rstrip("/")

    def webhook_key(self) -> str:
        """The secret the configured API signs its webhooks with."""
        secret = self.twilio_auth_token if self.gateway_api == "twilio" else self.webhook_secret
        return secret.get_secret_value()

    def secret_problem(self) -> str | None:
        """Why the sender must not start with these webhook secrets, or None."""
        name = (
            "SMSFLOW_TWILIO_AUTH_TOKEN"
            if self.gateway_api == "twilio"
            else "SMSFLOW_WEBHOOK_SECRET"
        )
        return secret_problem(self.env, name, self.webhook_key())
