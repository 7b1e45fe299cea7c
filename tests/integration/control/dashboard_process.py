"""``smsflow dashboard`` as a process on a free port, against a test's topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.common.settings import KafkaSettings
from services.control.ports import free_port
from tests.support import stop_process


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@contextmanager
def running_dashboard(settings: KafkaSettings) -> Iterator[str]:
    """Yields the page's base URL once the dashboard has read the topics to their end."""
    port = free_port()
    env = dict(
        os.environ,
        SMSFLOW_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        SMSFLOW_TOPIC_PREFIX=settings.topic_prefix,
        SMSFLOW_DASHBOARD_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.control.dashboard"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get_json(f"{base}/healthz")["caught_up"]:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                out = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"dashboard did not come up:\n{out}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process, timeout_s=15)
