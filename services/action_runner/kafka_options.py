"""Connection options for the runner's Kafka clients (faust, and the barrier's aiokafka
client), built from the shared settings, including TLS and SASL."""

from __future__ import annotations

from typing import Any

import faust

from services.action_runner.settings import RunnerSettings


def aiokafka_options(settings: RunnerSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if "SSL" in settings.kafka_security_protocol.upper():
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def faust_credentials(settings: RunnerSettings) -> Any:
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if "SSL" in protocol:
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=ssl_context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return faust.SSLCredentials(ssl_context)
