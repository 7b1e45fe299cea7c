from __future__ import annotations

import ssl

from services.common.aio_kafka import aiokafka_options
from services.common.settings import KafkaSettings


def test_plaintext_needs_no_credentials() -> None:
    settings = KafkaSettings(kafka_bootstrap_servers="a:9092,b:9092")
    assert aiokafka_options(settings) == {
        "bootstrap_servers": ["a:9092", "b:9092"],
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_the_secret_and_a_verifying_tls_context() -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret",  # type: ignore[arg-type]
    )
    options = aiokafka_options(settings)
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"
