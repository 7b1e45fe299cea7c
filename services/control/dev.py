"""``smsflow dev up | down | status | logs``: the whole stack on this machine, as processes.

``up`` starts what is not running (a broker unless ``SMSFLOW_KAFKA_BOOTSTRAP_SERVERS`` names
one, the topics, the gateway simulator, the enroller, the action runner and the SMS sender)
and returns once every part answers its health check; running it twice is harmless.
``down`` stops exactly what ``up`` started (by pid file, checking each pid is still ours).
State and logs live under ``SMSFLOW_STATE_DIR`` (default ``.smsflow``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from kafka.errors import KafkaError

from services.control.console import (
    BrokerUnreachable,
    Usage,
    parse_args,
    quiet_logs,
    require_broker,
)
from services.control.dev_secret import dev_webhook_secret
from services.control.kafka import create_topics
from services.control.local_kafka import BrokerError, LocalBroker, port_open
from services.control.processes import ProcessTable
from services.control.stack import HOST, Component, StackSettings, child_environment, components

KAFKA = "kafka"
KAFKA_MARKER = "kafka.Kafka"


class StackError(RuntimeError):
    """dev up could not bring the stack up; the message says what to do."""


@dataclass
class Started:
    """What one ``up`` started (the demo stops exactly these)."""

    names: list[str] = field(default_factory=list)
    broker: bool = False


def healthy(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Stack:
    def __init__(
        self,
        settings: StackSettings,
        environ: Mapping[str, str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.table = ProcessTable(settings.state_dir)
        self.environ = dict(os.environ if environ is None else environ)
        self.say = say

    @property
    def broker(self) -> LocalBroker:
        return LocalBroker(state_dir=self.settings.state_dir, port=self.settings.kafka_port)

    # ------------------------------------------------------------ up

    def up(self, only: Collection[str] | None = None) -> Started:
        """Start what is not running; ``only`` names the parts to consider (a second
        instance of some services: a state dir and ports of its own, the same broker)."""
        started = Started()
        began = time.monotonic()
        started.broker = self._broker_up()
        self._topics_up()
        pending: dict[str, tuple[Component, subprocess.Popen[bytes] | None]] = {}
        to_start = []
        for component in components(self.settings):
            if only is not None and component.name not in only:
                continue
            pid = self.table.running(component.name, component.marker)
            if pid is not None:
                self.say(f"  {component.name:<13} already running (pid {pid})")
                pending[component.name] = (component, None)
            elif port_open(HOST, component.port):
                raise StackError(
                    f"port {component.port} for {component.name} is in use by another process: "
                    f"stop it, or choose another port with "
                    f"SMSFLOW_{component.name.upper().replace('-', '_')}_PORT"
                )
            else:
                to_start.append(component)
        secret = dev_webhook_secret(self.settings.state_dir)
        env = child_environment(self.settings, self.environ, secret)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        for component in to_start:
            process = self.table.spawn(component.name, component.argv(), env)
            log = self._log(component.name)
            self.say(f"  {component.name:<13} starting (pid {process.pid}), log {log}")
            pending[component.name] = (component, process)
            started.names.append(component.name)
        self._wait_ready(pending)
        self._write_record()
        self.say(f"stack ready in {time.monotonic() - began:.1f}s")
        self.say(f"dashboard: {self.settings.dashboard_url}")
        return started

    def _broker_up(self) -> bool:
        if self.settings.external_broker:
            self.say(f"  kafka         using {self.settings.kafka_bootstrap_servers}")
            try:
                require_broker(self.settings)
            except BrokerUnreachable as exc:
                raise StackError(str(exc)) from exc
            return False
        broker = self.broker
        if self.table.running(KAFKA, KAFKA_MARKER) is None and port_open(HOST, broker.port):
            raise StackError(
                f"port {broker.port} is in use by another process: stop it, set SMSFLOW_KAFKA_PORT "
                "for the local broker, or SMSFLOW_KAFKA_BOOTSTRAP_SERVERS to use that broker"
            )
        if self.table.running(KAFKA, KAFKA_MARKER) is None:
            self.say(f"  kafka         starting on {broker.bootstrap} ...")
        try:
            fresh = broker.start()
        except BrokerError as exc:
            raise StackError(str(exc)) from exc
        self.say(f"  kafka         {'ready' if fresh else 'already running'} on {broker.bootstrap}")
        return fresh

    def _topics_up(self) -> None:
        try:
            created = create_topics(self.settings)
        except (KafkaError, TimeoutError) as exc:
            raise StackError(f"creating topics failed: {exc}") from exc
        prefix = self.settings.topic_prefix
        self.say(f"  topics        {len(created)} created, all present (prefix {prefix!r})")

    def _wait_ready(
        self, pending: dict[str, tuple[Component, subprocess.Popen[bytes] | None]]
    ) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout_s
        began = time.monotonic()
        waiting = dict(pending)
        while waiting:
            for name, (component, process) in list(waiting.items()):
                code = None if process is None else process.poll()
                if code is not None:
                    self.table.pid_file(name).unlink(missing_ok=True)
                    raise StackError(
                        f"{name} exited with code {code} while starting; last lines of "
                        f"{self._log(name)}:\n{self.table.log_tail(name)}"
                    )
                if healthy(component.health_url):
                    took = time.monotonic() - began
                    self.say(f"  {name:<13} ready on port {component.port} ({took:.1f}s)")
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(waiting)
                raise StackError(
                    f"not ready after {self.settings.ready_timeout_s:.0f}s: {names}; "
                    f"see the logs in {self.table.logs_dir} (`smsflow dev logs`)"
                )
            if waiting:
                time.sleep(0.3)

    def _log(self, name: str) -> str:
        return str(self.table.log_file(name))

    def _record_file(self) -> Path:
        return self.table.run_dir / "stack.json"

    def _write_record(self) -> None:
        record = {
            "bootstrap": self.settings.kafka_bootstrap_servers,
            "topic_prefix": self.settings.topic_prefix,
            "external_broker": self.settings.external_broker,
            "gateway_url": self.settings.gateway_url,
            "ports": {c.name: c.port for c in components(self.settings)},
        }
        self._record_file().write_text(json.dumps(record, indent=2) + "\n")

    # ------------------------------------------------------------ down

    def down(self, purge: bool = False, only: list[str] | None = None) -> None:
        """Stop the services (last started first), then the broker if we started it."""
        for component in reversed(components(self.settings)):
            if only is None or component.name in only:
                result = self.table.stop(component.name, component.marker)
                self.say(f"  {component.name:<13} {result.value}")
        if only is None or KAFKA in only:
            result = self.table.stop(KAFKA, KAFKA_MARKER, timeout_s=30.0)
            self.say(f"  {KAFKA:<13} {result.value}")
        if only is None:
            self._record_file().unlink(missing_ok=True)
        if purge:
            self.purge_data()
            self.say(f"  data          removed ({self.settings.state_dir})")

    def purge_data(self) -> None:
        """The broker's and the services' data (call with the stack stopped)."""
        self.broker.purge()
        shutil.rmtree(self.settings.data_dir, ignore_errors=True)

    # ------------------------------------------------------------ status

    def status(self) -> list[tuple[str, str, str, str]]:
        """(name, pid, state, where) for every part; state is ready/starting/stopped."""
        rows = []
        if self.settings.external_broker:
            rows.append((KAFKA, "-", "external", self.settings.kafka_bootstrap_servers))
        else:
            pid = self.table.running(KAFKA, KAFKA_MARKER)
            state = "stopped" if pid is None else "running"
            rows.append((KAFKA, str(pid or "-"), state, self.broker.bootstrap))
        for component in components(self.settings):
            pid = self.table.running(component.name, component.marker)
            if pid is None:
                state = "stopped"
            else:
                state = "ready" if healthy(component.health_url) else "not ready"
            rows.append((component.name, str(pid or "-"), state, component.health_url))
        return rows

    def all_ready(self) -> bool:
        return all(state in ("ready", "running", "external") for _, _, state, _ in self.status())


def follow_logs(
    table: ProcessTable, names: list[str], lines: int, follow: bool, out: TextIO
) -> None:
    width = max(len(n) for n in names)
    for name in names:
        for line in table.log_tail(name, lines).splitlines():
            print(f"{name:<{width}} | {line}", file=out)
    if not follow:
        return
    offsets = {n: _size(table.log_file(n)) for n in names}
    while True:
        for name in names:
            path = table.log_file(name)
            size = _size(path)
            if size < offsets[name]:  # truncated or replaced: start again
                offsets[name] = 0
            if size > offsets[name]:
                with path.open("rb") as handle:
                    handle.seek(offsets[name])
                    chunk = handle.read()
                offsets[name] += len(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    print(f"{name:<{width}} | {line}", file=out, flush=True)
        time.sleep(0.5)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


NAMES = [KAFKA, "gateway-sim", "enroller", "action-runner", "sms-sender", "dashboard"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsflow dev", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start whatever part of the stack is not running")
    up.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="only these parts (e.g. a second instance of some services: give it a state "
        "dir and ports of its own, the same broker and topic prefix)",
    )
    down = sub.add_parser("down", help="stop everything dev up started")
    down.add_argument(
        "--purge", action="store_true", help="also delete the broker's and services' data"
    )
    down.add_argument(
        "names", nargs="*", choices=[*NAMES, []], metavar="NAME", help="only these parts"
    )
    sub.add_parser("status", help="what runs, and whether it is ready")
    logs = sub.add_parser("logs", help="the processes' logs")
    logs.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(NAMES)}")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=40)
    return parser


def main(argv: list[str]) -> int:
    try:
        args = parse_args(build_parser(), argv)
    except Usage as exc:
        return exc.code
    quiet_logs("dev")
    settings = StackSettings.from_environ(os.environ)
    stack = Stack(settings, say=lambda text: print(text, flush=True))
    if args.action == "up":
        unknown = [n for n in args.names if n not in NAMES or n == KAFKA]
        if unknown:
            print(f"smsflow dev up: cannot start {', '.join(unknown)} alone", file=sys.stderr)
            return 2
        print(f"smsflow dev up (state in {settings.state_dir})", flush=True)
        try:
            stack.up(only=args.names or None)
        except StackError as exc:
            print(f"smsflow dev up: {exc}", file=sys.stderr)
            return 1
        return 0
    unknown = [n for n in getattr(args, "names", []) if n not in NAMES]
    if unknown:
        print(
            f"smsflow dev: unknown {', '.join(unknown)}; choose from {', '.join(NAMES)}",
            file=sys.stderr,
        )
        return 2
    if args.action == "down":
        stack.down(purge=args.purge, only=args.names or None)
        return 0
    if args.action == "status":
        rows = stack.status()
        for name, pid, state, where in rows:
            print(f"{name:<13} {state:<9} pid {pid:<8} {where}")
        return 0 if stack.all_ready() else 1
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        print(
            f"smsflow dev logs: unknown {', '.join(unknown)}; choose from {', '.join(NAMES)}",
            file=sys.stderr,
        )
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        follow_logs(stack.table, args.names or NAMES, args.lines, args.follow, sys.stdout)
    return 0
