"""Connection options for the services' Kafka client (aiokafka), built from the same
settings as the kafka-python ones, TLS and SASL included."""

from __future__ import annotations

from typing import Any

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
