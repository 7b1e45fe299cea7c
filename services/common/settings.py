"""Configuration from ``SMSFLOW_*`` environment variables (and secret files).

Only entrypoints build settings; everything below them receives values.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from schemas.topics import DEFAULT_PARTITIONS, DEFAULT_PREFIX, TopicSpec


class KafkaSettings(BaseSettings):
    # Secrets may also come from files named like the field in SMSFLOW_SECRETS_DIR
    # (e.g. /run/secrets/kafka_sasl_password), as container platforms mount them, or like
    # the variable (SMSFLOW_KAFKA_SASL_PASSWORD, the key of a Kubernetes secret).
    model_config = SettingsConfigDict(env_prefix="SMSFLOW_", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = DEFAULT_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None

    def topic(self, spec: TopicSpec) -> str:
        return spec.full_name(self.topic_prefix)

    def client_config(self) -> dict[str, Any]:
        """Connection options for kafka-python clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                config["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            config["ssl_cafile"] = self.kafka_ssl_cafile
            config["ssl_check_hostname"] = True
        return config

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings looks only for prefixed file names; the field's own name too.
        secrets_dir = getattr(file_secret_settings, "secrets_dir", None)
        bare = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir, env_prefix="")
        return init_settings, env_settings, dotenv_settings, file_secret_settings, bare

    @classmethod
    def from_env(cls, **overrides: Any) -> KafkaSettings:
        return cls(_secrets_dir=_secrets_dir(), **overrides)


def _secrets_dir() -> str | None:
    import os

    path = os.environ.get("SMSFLOW_SECRETS_DIR")
    return path if path and os.path.isdir(path) else None


# Local development (``smsflow dev up`` sets ``SMSFLOW_ENV=dev``): the only place where the
# published default secrets are accepted.
DEV_ENV = "dev"
# Values anyone can read in this repository: the development defaults and the placeholder of
# deploy/k8s/config.yaml.
PUBLIC_SECRETS = frozenset(
    {"dev-webhook-secret", "test-auth-token", "dev-link-secret", "replace-me", ""}
)
MIN_SECRET_LENGTH = 16


def secret_problem(env: str, name: str, secret: str) -> str | None:
    """Why a service must not start with ``secret`` (the value of setting ``name``), or None."""
    if env == DEV_ENV:
        return None
    if secret in PUBLIC_SECRETS:
        return (
            f"{name} is unset or a published default: set a secret of your own "
            f"(or SMSFLOW_ENV={DEV_ENV} for local development)"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{name} is shorter than {MIN_SECRET_LENGTH} characters"
    return None
