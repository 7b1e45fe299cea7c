"""The whole stack against the issue's goals, through the public contract only.

One stack as ``smsflow dev up`` runs it (one process per service, its own ports and topic
prefix on the given broker) and the workflow of ``bench_stack`` (subscribe, mark as
marketing contact, send). Contact changes are produced to ``contact-changes``; an SMS counts
once the gateway simulator accepted it (``/_sim/messages``). Three phases, one after the
other, each waiting for its SMS before the next starts:

- ``paced``: new contacts at 200/s for 60 s, each running the workflow: p50/p99 latency;
- ``burst``: 2,000 such contacts at once: SMS/s;
- ``mix``: 1,000 changes/s for 60 s, 10 % of them new customers (one SMS each), the rest
  changes of a property no workflow reads to 5,000 known contacts: whether the stack keeps
  up, and the p50/p99 of the sends.

Latency is from the moment a change is handed to the producer to the simulator's
``received_at`` of its SMS. Both are ``time.time()`` readings of the same host's realtime
clock (the simulator runs on this machine), so they compare directly, to the millisecond
the simulator reports. An SMS not accepted within the wait counts as infinitely late, so a
stack that falls behind shows ``inf`` rather than the latency of the lucky ones.

Each service's resident memory (RSS) is read at the start and the end of the run, and its
CPU time per phase (as % of one core) shows where the CPU goes.

The issue's figures are the defaults; for a quick run shorten them with
``SMSFLOW_BENCH_SECONDS`` (each paced phase), ``SMSFLOW_BENCH_BURST`` (contacts) and
``SMSFLOW_BENCH_DRAIN_S`` (the longest wait for a phase's SMS after its last change).
The goals are not asserted: this reports what it measures.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kafka import KafkaProducer

from bench.bench_stack import running_stack
from schemas.contacts import ContactChange
from schemas.topics import CONTACT_CHANGES
from services.common.codec import encode, encode_key
from services.control.dev import Stack
from services.control.kafka import make_producer
from services.control.stack import StackSettings

SECONDS = float(os.environ.get("SMSFLOW_BENCH_SECONDS", "60"))
BURST = int(os.environ.get("SMSFLOW_BENCH_BURST", "2000"))
DRAIN_S = float(os.environ.get("SMSFLOW_BENCH_DRAIN_S", "300"))
PACED_RATE = 200.0  # contacts/s
MIX_RATE = 1000.0  # changes/s
MIX_SEND_EVERY = 10  # one change in ten is a new customer: a send
MIX_KNOWN_CONTACTS = 5000
IDLE_S = 30.0  # stop waiting for a phase's SMS once none arrived for this long
SERVICES = ("enroller", "action-runner", "sms-sender", "gateway-sim")
PARTS = ("gateway-sim", "enroller", "action-runner", "sms-sender")  # no dashboard
TICKS = os.sysconf("SC_CLK_TCK")


# One change ready to produce: key, value, and the number whose SMS it triggers (or None).
Record = tuple[bytes, bytes, str | None]


# Finnish mobile numbers, a range of their own per phase.
NUMBERS = {"paced": "+358401", "burst": "+358411", "mix": "+358441"}


def customer(phase: str, i: int) -> Record:
    number = f"{NUMBERS[phase]}{i:06d}"
    change = ContactChange(
        account_id="bench",
        contact_id=f"{phase}-{i}",
        properties={"firstname": f"Nr{i}", "mobilephone": number, "lifecyclestage": "customer"},
    )
    return encode_key(change.key), encode(change), number


def browsing(i: int) -> Record:
    """A change no workflow reads, to one of the known contacts (a CRM's page views)."""
    change = ContactChange(
        account_id="bench",
        contact_id=f"known-{i % MIX_KNOWN_CONTACTS}",
        properties={"lifecyclestage": "lead", "last_page_seen": f"/products/{i % 97}"},
    )
    return encode_key(change.key), encode(change), None


def mix(count: int) -> Iterator[Record]:
    for i in range(count):
        yield customer("mix", i) if i % MIX_SEND_EVERY == 0 else browsing(i)


@dataclass
class Produced:
    began: float
    ended: float
    changes: int
    sent_at: dict[str, float] = field(default_factory=dict)  # number -> time.time()

    @property
    def rate(self) -> float:
        return self.changes / max(self.ended - self.began, 1e-9)


def produce(
    producer: KafkaProducer, topic: str, records: Iterable[Record], rate: float | None
) -> Produced:
    """Hand each change to the producer at ``rate`` per second (None: as fast as it can),
    noting when each SMS-triggering change left."""
    ready = list(records)  # encoded beforehand: the pacing loop only sends
    produced = Produced(time.time(), 0.0, len(ready))
    start = time.monotonic()
    for i, (key, value, number) in enumerate(ready):
        if rate is not None:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if number is not None:
            produced.sent_at[number] = time.time()
        producer.send(topic, key=key, value=value)
    producer.flush()
    produced.ended = time.time()
    return produced


def accepted(gateway_url: str, numbers: set[str]) -> dict[str, float]:
    """Number -> when the simulator accepted its (first) SMS, epoch seconds."""
    with urllib.request.urlopen(f"{gateway_url}/_sim/messages", timeout=60) as response:
        messages = json.load(response)
    out: dict[str, float] = {}
    for message in messages:
        if message["to"] in numbers and message["to"] not in out:
            stamp = message["received_at"].replace("Z", "+00:00")
            out[message["to"]] = datetime.fromisoformat(stamp).timestamp()
    return out


def wait_accepted(gateway_url: str, produced: Produced) -> dict[str, float]:
    numbers = set(produced.sent_at)
    found: dict[str, float] = {}
    last_progress = time.monotonic()
    deadline = last_progress + DRAIN_S
    while len(found) < len(numbers) and time.monotonic() < deadline:
        time.sleep(1.0)
        now = accepted(gateway_url, numbers)
        if len(now) > len(found):
            last_progress = time.monotonic()
        found = now
        if time.monotonic() - last_progress > IDLE_S:
            break
    return found


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank; ``ordered`` ascending."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latencies_ms(produced: Produced, found: dict[str, float]) -> list[float]:
    """Per SMS, ascending; one never accepted is infinitely late."""
    return sorted(
        (found[n] - t) * 1000 if n in found else math.inf for n, t in produced.sent_at.items()
    )


class Usage:
    """RSS and CPU time of the stack's processes, read from /proc."""

    def __init__(self, stack: Stack) -> None:
        self.pids = {name: stack.table.recorded_pid(name) for name in SERVICES}

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1]) / 1024
        return out

    def cpu_s(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            # Fields after the command name (which may hold spaces): utime, stime are 12, 13.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / TICKS
        return out


def _name(service: str) -> str:
    return service.replace("-", "_")


def run_phase(
    phase: str,
    settings: StackSettings,
    usage: Usage,
    records: Iterable[Record],
    rate: float | None,
) -> tuple[Produced, dict[str, float], dict[str, float]]:
    producer = make_producer(settings, linger_ms=1)
    cpu_before, wall_before = usage.cpu_s(), time.monotonic()
    try:
        produced = produce(producer, settings.topic(CONTACT_CHANGES), records, rate)
    finally:
        producer.close()
    found = wait_accepted(settings.gateway_url, produced)
    wall = time.monotonic() - wall_before
    cpu = {
        f"{phase}_cpu_{_name(name)}_pct": (used - cpu_before[name]) / wall * 100
        for name, used in usage.cpu_s().items()
    }
    return produced, found, cpu


def run(bootstrap: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    with running_stack(bootstrap, only=PARTS) as (settings, stack):
        usage = Usage(stack)
        start_rss = usage.rss_mb()

        count = round(PACED_RATE * SECONDS)
        records = (customer("paced", i) for i in range(count))
        produced, found, cpu = run_phase("paced", settings, usage, records, PACED_RATE)
        ordered = latencies_ms(produced, found)
        figures |= {
            "paced_offered_contacts_per_s": produced.rate,
            "paced_sms_accepted": float(len(found)),
            "paced_sms_expected": float(count),
            "paced_latency_p50_ms": percentile(ordered, 0.50),
            "paced_latency_p99_ms": percentile(ordered, 0.99),
            **cpu,
        }

        records = (customer("burst", i) for i in range(BURST))
        produced, found, cpu = run_phase("burst", settings, usage, records, None)
        elapsed = (max(found.values(), default=produced.began) - produced.began) or math.inf
        figures |= {
            "burst_sms_accepted": float(len(found)),
            "burst_sms_per_s": len(found) / elapsed,
            **cpu,
        }

        count = round(MIX_RATE * SECONDS)
        produced, found, cpu = run_phase("mix", settings, usage, mix(count), MIX_RATE)
        ordered = latencies_ms(produced, found)
        drain_s = max(found.values(), default=math.inf) - produced.ended
        everything = len(found) == len(produced.sent_at)
        figures |= {
            "mix_offered_changes_per_s": produced.rate,
            "mix_sms_accepted": float(len(found)),
            "mix_sms_expected": float(len(produced.sent_at)),
            # Kept up: every send arrived, the last within 1 s of the last change produced.
            "mix_sustained": float(everything and drain_s <= 1.0),
            "mix_drain_s": drain_s,
            "mix_send_latency_p50_ms": percentile(ordered, 0.50),
            "mix_send_latency_p99_ms": percentile(ordered, 0.99),
            **cpu,
        }

        end_rss = usage.rss_mb()
        for name in SERVICES:
            figures[f"rss_{_name(name)}_start_mb"] = start_rss[name]
            figures[f"rss_{_name(name)}_end_mb"] = end_rss[name]
    return figures


if __name__ == "__main__":
    bootstrap = os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for name, value in run(bootstrap).items():
        print(f"{name:<40} {value:,.1f}")
