"""Connection options for the services' Kafka client (aiokafka), built from the same
settings as the kafka-python ones, TLS and SASL included."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from services.common.metadata_backoff import pace_failed_metadata_refreshes
from services.common.settings import KafkaSettings

pace_failed_metadata_refreshes()  # every aiokafka client is configured through this module


def _ssl_context(settings: KafkaSettings) -> Any:
    if "SSL" not in settings.kafka_security_protocol.upper():
        return None
    from aiokafka.helpers import create_ssl_context

    # aiokafka's context always checks the host name, as kafka-python is told to.
    return create_ssl_context(cafile=settings.kafka_ssl_cafile)


def aiokafka_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    ssl_context = _ssl_context(settings)
    if ssl_context is not None:
        options["ssl_context"] = ssl_context
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def pipeline_producer(options: dict[str, Any], linger_ms: int) -> AIOKafkaProducer:
    """The producer of a record pipeline's outputs and changelogs."""
    return AIOKafkaProducer(
        **options,
        acks="all",
        # Not idempotent: after a broker restart aiokafka's idempotent producer keeps a stale
        # producer id and fails every write for good (OutOfOrderSequenceNumber). A repeated
        # output is harmless: the pipelines' event ids and keys are deterministic.
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )


def pipeline_consumer(
    options: dict[str, Any], group_id: str, session_timeout_s: float
) -> AIOKafkaConsumer:
    """The consumer of a record pipeline: offsets committed by hand, and the range assignor,
    so partition N of every co-partitioned input lands on the instance holding state N."""
    session_ms = int(session_timeout_s * 1000)
    return AIOKafkaConsumer(
        **options,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(3000, session_ms // 3),
        fetch_max_wait_ms=100,
    )
