"""aiokafka clients for the sender's asyncio loop, configured like the kafka-python ones.

The ledger and status writes and the ledger tail run on the loop with aiokafka (record
batches built and checked in its C extension, no thread hand-offs); the request consumer
stays on kafka-python in a thread of its own.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from services.common.settings import KafkaSettings


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return options


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    # aiokafka is not idempotent unless asked (REFERENCE 9); acks=all goes with it.
    options: dict[str, Any] = {"enable_idempotence": True, "acks": "all", "linger_ms": 5}
    options.update(overrides)
    return AIOKafkaProducer(**connection_options(settings), **options)


def make_reader(settings: KafkaSettings, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer without a group, for reading whole topics."""
    options: dict[str, Any] = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**connection_options(settings), **options)
