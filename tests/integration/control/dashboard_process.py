"""``smsflow dashboard`` as a process on a free port, against a test's topics."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.common.settings import KafkaSettings
from tests.processes import ServiceProcess


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class DashboardProcess(ServiceProcess):
    """Ready once it has read the topics to their end, not merely once it serves."""

    module = "services.control.dashboard"
    name = "dashboard"
    port_variable = "SMSFLOW_DASHBOARD_PORT"

    def ready(self, health: bytes) -> bool:
        return bool(json.loads(health)["caught_up"])


@contextmanager
def running_dashboard(settings: KafkaSettings) -> Iterator[str]:
    """Yields the page's base URL once the dashboard has read the topics to their end."""
    dashboard = DashboardProcess(settings).start(timeout_s=60)
    try:
        yield dashboard.url
    finally:
        dashboard.stop(timeout_s=15)
