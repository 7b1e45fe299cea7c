"""The container and cluster files name commands, ports and paths that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.cli import COMMANDS
from services.control.stack import StackSettings, components

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ROOT = DEPLOY.parent


def test_k8s_deployments_run_known_commands_on_the_default_ports() -> None:
    ports = {c.name: c.port for c in components(StackSettings())}
    deployments = [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc["kind"] == "Deployment"
    ]
    assert {d["metadata"]["name"] for d in deployments} == {
        "enroller",
        "action-runner",
        "sms-sender",
    }
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (command,) = container["args"]
        assert command in COMMANDS
        assert container["ports"][0]["containerPort"] == ports[command]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_compose_services_run_known_commands() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if name == "kafka":
            continue
        assert service["command"][0] in COMMANDS, name


def test_the_dockerfile_copies_paths_that_exist() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_the_dashboard_only_queries_metrics_the_services_define() -> None:
    import json
    import re

    defined = set()
    for module in (ROOT / "services").glob("*/metrics.py"):
        for name in re.findall(r'"(smsflow_[a-z_]+)"', module.read_text()):
            defined |= {name, f"{name}_total", f"{name}_bucket"}
    dashboard = json.loads((DEPLOY / "dashboards" / "smsflow.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"smsflow_[a-z_]+", target["expr"])
    }
    assert queried
    assert queried <= defined, queried - defined
