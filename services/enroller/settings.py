"""The enroller's configuration (``SMSFLOW_*`` variables), built once in ``__main__``."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import KafkaSettings


class EnrollerSettings(KafkaSettings):
    enroller_host: str = "0.0.0.0"  # health and metrics are scraped from outside the pod
    enroller_port: int = 6066
    data_dir: Path = Path(".smsflow/data")
    # "memory://" replays the changelog on start; "rocksdb://" keeps state on disk (rocksdict).
    enroller_store: str = "memory://"
    enroller_rocksdb_cache_mb: int = 64  # block cache per partition database
    # Timers fire at their due time; this is how often new assignments and workflows turned
    # on are looked for.
    enroller_timer_interval_s: float = 0.5
    enroller_batch_size: int = 1000  # records decided together, before one wait for acks
    enroller_dedupe_window: int = 24  # latest change ids remembered per contact
    enroller_linger_ms: int = 1  # producer batching delay (commands are on the SMS path)
    # A crashed instance's partitions move to the others after this long without heartbeats.
    enroller_session_timeout_s: float = 30.0
    # Fault injection for crash tests: once the Nth batch of records has its outputs
    # acknowledged, before its state and offsets are written, the process kills itself with
    # SIGKILL (0: off).
    inject_crash_after_outputs: int = 0
    log_level: str = "INFO"

    @property
    def app_id(self) -> str:
        """The consumer group and the prefix of the changelog topics."""
        return f"{self.topic_prefix}enroller"
