"""A failed metadata refresh waits the client's retry backoff instead of returning at once."""

from __future__ import annotations

import time

import pytest
from aiokafka.client import AIOKafkaClient

import services.common.aio_kafka  # noqa: F401  (installs the pacing, as every service does)


@pytest.mark.asyncio
async def test_a_failed_metadata_refresh_waits_the_retry_backoff() -> None:
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1", retry_backoff_ms=300)
    began = time.monotonic()
    updated = await client._metadata_update(client.cluster, [])  # no broker known: fails
    assert updated is False
    assert time.monotonic() - began >= 0.3
    await client.close()
