"""SMS per second from ``sms-requests`` to the gateway simulator, and the sender's CPU cost.

Pre-loads N requests on a topic prefix of its own, starts the simulator (generic API,
50 ms latency, delivery callbacks on) and the sender as subprocesses on free loopback
ports, and times from ``service_ready`` until every request is accepted by the gateway.
CPU seconds come from /proc for each process over the same interval.

    python bench/bench_sms_sender.py [BOOTSTRAP]
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from schemas.sms import SmsRequest  # noqa: E402
from schemas.topics import SMS_REQUESTS  # noqa: E402
from services.common.settings import KafkaSettings  # noqa: E402
from services.control.kafka import create_topics, make_producer, send_model  # noqa: E402
from services.control.ports import free_port  # noqa: E402

REQUESTS = 6000
LATENCY_MS = 50
TIME_LIMIT_S = 60.0
SIM_READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests(n: int) -> list[SmsRequest]:
    return [
        SmsRequest.model_validate(
            {
                "idempotency_key": f"bench-{i:08d}",
                "account_id": "bench",
                "contact_id": str(i),
                "workflow_id": "wf",
                "enrollment_id": f"enr-{i}",
                "message_id": "hello",
                "to": f"+3584{i:08d}",
                "from": f"+35845{i % 4:07d}",
                "body": "Hello from the bench",
                "encoding": "gsm7",
                "segments": 1,
                "to_masked": "+3584*****00",
            }
        )
        for i in range(n)
    ]


def _sent(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("smsflow_sender_requests_total")
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(bootstrap: str, n: int = REQUESTS) -> dict[str, float]:
    settings = KafkaSettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}."
    )
    create_topics(settings)
    producer = make_producer(settings, linger_ms=20)
    for request in _requests(n):
        send_model(producer, settings.topic(SMS_REQUESTS), request)
    producer.flush(timeout=60)
    producer.close()

    sender_port = free_port()
    secret = secrets.token_hex(32)  # explicit, as the sender requires outside dev
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.gateway_sim", "--port", "0", "--seed", "1"),
            *("--latency-ms", str(LATENCY_MS), "--callback-delay-ms", "50"),
            *("--webhook-secret", secret),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    sender: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None
        match = SIM_READY.search(sim.stdout.readline())
        if match is None:
            raise RuntimeError("gateway simulator did not start")
        env = dict(
            os.environ,
            SMSFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            SMSFLOW_TOPIC_PREFIX=settings.topic_prefix,
            SMSFLOW_GATEWAY_URL=match.group(1),
            SMSFLOW_GATEWAY_API="http",
            SMSFLOW_SENDER_PORT=str(sender_port),
            SMSFLOW_SENDER_PUBLIC_URL=f"http://127.0.0.1:{sender_port}",
            SMSFLOW_WEBHOOK_SECRET=secret,
        )
        sender = subprocess.Popen(
            [sys.executable, "-m", "services.sms_sender"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert sender.stdout is not None
        if "service_ready" not in sender.stdout.readline():
            raise RuntimeError("sender did not become ready")
        started = time.perf_counter()
        sender_cpu, sim_cpu = _cpu_s(sender.pid), _cpu_s(sim.pid)
        done = 0.0
        while done < n and time.perf_counter() - started < TIME_LIMIT_S:
            time.sleep(0.1)
            done = _sent(sender_port)
        elapsed = time.perf_counter() - started
        sender_cpu, sim_cpu = _cpu_s(sender.pid) - sender_cpu, _cpu_s(sim.pid) - sim_cpu
        with urllib.request.urlopen(f"{match.group(1)}/_sim/messages", timeout=30) as answer:
            accepted = len({m["idempotency_key"] for m in json.load(answer)})
    finally:
        if sender is not None:
            _stop(sender)
        _stop(sim)
    return {
        "sms_sender_sms_per_s": round(done / elapsed, 1),
        "sms_sender_cpu_ms_per_sms": round(1000 * sender_cpu / max(done, 1), 3),
        "sms_sender_gateway_sim_cpu_ms_per_sms": round(1000 * sim_cpu / max(done, 1), 3),
        "sms_sender_accepted_keys": float(accepted),
    }


if __name__ == "__main__":
    server = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:39092"
    for name, value in run(server).items():
        print(f"{name:<44} {value:>14,.3f}")
