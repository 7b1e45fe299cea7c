"""Session-wide broker selection for integration and e2e tests.

Order: ``SMSFLOW_KAFKA_BOOTSTRAP_SERVERS`` if it answers → a Kafka container when a Docker
engine answers → the local KRaft broker that ``smsflow kafka start`` runs. Under ``CI=true``
a broker that cannot be had fails the run instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from services.common.settings import KafkaSettings
from services.control.local_kafka import BrokerError, LocalBroker, broker_answers
from services.control.ports import free_port
from tests.support import drop_topics, fresh_settings

KAFKA_TEST_IMAGE = os.environ.get("KAFKA_TEST_IMAGE", "apache/kafka:4.0.2")


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no engine, no socket, no package: all mean "not this way"
        return False


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("KAFKA_REQUIRED") == "1":
        pytest.fail(f"no Kafka broker for integration tests: {reason}")
    pytest.skip(f"no Kafka broker: {reason}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS")
    if configured and broker_answers(configured):
        yield configured
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer(KAFKA_TEST_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    port = free_port()
    broker = LocalBroker(
        state_dir=Path(tmp_path_factory.mktemp("kafka")), port=port, controller_port=free_port()
    )
    try:
        broker.start()
    except BrokerError as exc:
        _unavailable(str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own, on free ports, that the test may stop and start: the
    shared session broker (and every other test) stays untouched."""
    own = LocalBroker(
        state_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="512m"
    )
    try:
        own.start()
    except BrokerError as exc:
        pytest.fail(f"could not start a broker of the test's own: {exc}")
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> Iterator[KafkaSettings]:
    """A topic prefix of this test's own, with every topic created, deleted afterwards."""
    settings = fresh_settings(kafka_bootstrap)
    yield settings
    drop_topics(settings)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Tests that configure logging must not leave a cached logger bound to a closed stream."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
