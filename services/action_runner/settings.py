"""The action runner's settings (``SMSFLOW_*``), built once in ``__main__``."""

from __future__ import annotations

from pydantic import SecretStr

from services.common.settings import KafkaSettings, secret_problem


class RunnerSettings(KafkaSettings):
    action_runner_port: int = 6067
    action_runner_bind: str = "127.0.0.1"
    # State stores: "rocksdb://" (rocksdict) keeps them on disk under data_dir, so memory
    # stays bounded; "memory://" holds every key in memory. Either is rebuilt from its
    # changelog topic when a partition is assigned.
    action_runner_store: str = "rocksdb://"
    action_runner_rocksdb_cache_mb: int = 16  # block cache per partition database
    # Producer linger: outputs are latency-critical (a send waits for them), batches form
    # anyway because a whole batch is sent before any ack is awaited.
    action_runner_linger_ms: int = 1
    data_dir: str = ".smsflow/data"
    log_level: str = "INFO"
    # Bodies over this many segments are skipped as too_long (HubSpot-like carriers bill <=10).
    max_segments: int = 10
    # How long an action waits for consent changes already written (STOP, opt-outs) to be
    # applied before it is decided; past it, the ledger counts as unreadable (fail closed).
    consent_barrier_timeout_s: float = 10.0
    # A send whose number's opt-outs could not be proved current is deferred this long.
    consent_retry_s: float = 30.0
    # Fault injection for resilience tests: the first N replies fail to apply (0: off).
    inject_reply_failures: int = 0
    # Fault injection for crash tests: once the Nth batch of actions has its outputs
    # acknowledged, before its state and offsets are written, the process kills itself with
    # SIGKILL (0: off).
    inject_crash_after_outputs: int = 0
    # How soon the group notices a dead instance (kill -9) and hands its partitions over.
    action_runner_session_timeout_s: float = 10.0
    # How long a command naming a definition not yet read waits for it to arrive.
    definitions_grace_s: float = 2.0
    # HMAC key of tracked links' short codes: set a long random one outside development, or
    # anyone who knows it and an SMS's ids could work out that SMS's codes.
    link_secret: SecretStr = SecretStr("dev-link-secret")
    # SMSFLOW_ENV: "dev" for local development; anything else requires a link secret of its own.
    env: str = ""

    def secret_problem(self) -> str | None:
        """Why the runner must not start with this link secret, or None."""
        return secret_problem(self.env, "SMSFLOW_LINK_SECRET", self.link_secret.get_secret_value())
