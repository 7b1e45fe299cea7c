"""The enroller: the pure matching core, the process on the real broker, memory per contact.

Workload: 1,000 enabled workflows of realistic criteria (OR of AND-groups over 14 contact
properties, equality on segmenting properties, ranges, dates, negations; 30 % with
suppression, 20 % with a re-enrollment trigger), contacts of 10 properties of which 8 are
mentioned by some workflow; a new contact enrolls in about 6 of the 1,000 workflows.

* ``enroller_core_unreferenced_changes_per_s``: 10,000 contacts; 90 % of the changes touch
  only properties no workflow mentions. Each change is applied as the agent applies it
  (state decoded, decided, encoded). CPU time of one process: a per-core figure.
* ``enroller_core_referenced_changes_per_s``: the same, every change touching a property
  that workflows mention (some enroll: commands and events are built too).
* ``enroller_changes_per_s``: the enroller process on the broker, from the first produced
  change to the last one handled (its ``/metrics``), for 15,000 updates (90 % unreferenced)
  of 2,000 contacts it holds; ``make bench`` prints it beside the raw round-trip rate.
* ``enroller_new_contacts_per_s``: the same process taking in the 2,000 new contacts (each
  enrolled in ~6 workflows: ~12 events and commands out per contact).
* ``enroller_state_mb_per_100k_contacts``: resident memory of 100,000 contact records as the
  memory store holds them (key and encoded state, one store per partition; states made by the
  engine from 10-property contacts, enrollments included).
* ``enroller_rss_mb``: the enroller process's resident memory at the end of its run.

    python bench/bench_enroller.py [BOOTSTRAP]

``BENCH_ENROLLER_PROFILE=FILE`` runs the enroller process under cProfile (CPU time of its
event loop; ``python -m pstats FILE`` reads the stats).
"""

from __future__ import annotations

import gc
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from schemas.contacts import ContactChange  # noqa: E402
from schemas.definitions import DefinitionApplied  # noqa: E402
from schemas.topics import CONTACT_CHANGES, DEFINITIONS  # noqa: E402
from services.common.settings import KafkaSettings  # noqa: E402
from services.common.state_store import MemoryStore  # noqa: E402
from services.control.kafka import create_topics, make_producer  # noqa: E402
from services.control.ports import free_port  # noqa: E402
from services.enroller.definitions import Definitions  # noqa: E402
from services.enroller.engine import ContactEngine  # noqa: E402
from services.enroller.index import WorkflowIndex  # noqa: E402
from services.enroller.state import decode_state, encode_state  # noqa: E402

WORKFLOWS = 1000
CORE_CONTACTS = 10_000
CORE_CHANGES = 40_000
MEMORY_CONTACTS = 100_000
MEMORY_SAMPLE = 20_000  # made by the engine; the rest are copies of these records
E2E_CONTACTS = 2_000
E2E_UPDATES = 15_000
TIME_LIMIT_S = 60.0 * (4 if os.environ.get("BENCH_ENROLLER_PROFILE") else 1)
# BENCH_ENROLLER_PROFILE=FILE runs the process under cProfile, timed by the CPU time of its
# event-loop thread (not its waits, nor the consumer's fetch thread); stats in FILE.
PROFILED = """
import cProfile, runpy, sys, time
stats, sys.argv = sys.argv[1], ["enroller"]
profile = cProfile.Profile(time.thread_time)
try:
    profile.runcall(runpy.run_module, "services.enroller", run_name="__main__")
finally:
    profile.dump_stats(stats)
"""

# ---------------------------------------------------------------- workload

VOCAB: dict[str, list[Any]] = {
    "lifecyclestage": ["subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist"],
    "country": ["FI", "SE", "NO", "DK", "DE", "FR", "ES", "IT", "NL", "US", "GB", "PL"],
    "industry": [f"industry-{i}" for i in range(15)],
    "plan": ["free", "starter", "pro", "enterprise"],
    "tier": ["bronze", "silver", "gold", "platinum"],
    "segment": [f"segment-{i}" for i in range(20)],
    "language": ["fi", "sv", "en", "de", "fr", "es"],
    "lead_source": ["ads", "organic", "referral", "event", "partner", "email"],
    "jobtitle": ["ceo", "cto", "engineer", "marketer", "sales", "support", "student"],
    "city": [f"city-{i}" for i in range(25)],
    "hs_marketable_status": ["true", "false"],
    "score": list(range(0, 101, 5)),
    "num_orders": list(range(30)),
    "renewal_date": [f"2027-{m:02d}-15" for m in range(1, 13)],
}
UNREFERENCED = ["page_views", "last_seen", "utm_campaign", "notes", "browser", "timezone_guess"]
TEXT_PROPS = [p for p, v in VOCAB.items() if isinstance(v[0], str) and "date" not in p]
SEGMENTING = [p for p in TEXT_PROPS if len(VOCAB[p]) >= 6]


def _filter(rng: random.Random, selective: bool = True) -> dict[str, Any]:
    """A filter; a selective one matches a small share of contacts (as a segment does)."""
    prop = rng.choice(SEGMENTING if selective else list(VOCAB))
    vocab = VOCAB[prop]
    if prop in ("score", "num_orders"):
        op = rng.choice(["gt", "gte", "lt", "between"])
        if op == "between":
            low = rng.choice(vocab)
            return {"property": prop, "operator": op, "values": [low, low + 20]}
        return {"property": prop, "operator": op, "value": rng.choice(vocab)}
    if prop == "renewal_date":
        return {
            "property": prop,
            "operator": rng.choice(["before", "after"]),
            "value": "2027-06-01",
        }
    broad = ["neq", "is_none_of", "is_known"]
    op = rng.choice(["eq", "is_any_of"] if selective else ["eq", "is_any_of", *broad])
    if op == "is_known":
        return {"property": prop, "operator": op}
    if op in ("is_any_of", "is_none_of"):
        return {"property": prop, "operator": op, "values": rng.sample(vocab, 2)}
    return {"property": prop, "operator": op, "value": rng.choice(vocab)}


def workflow_documents(n: int = WORKFLOWS, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "smsflow/v1",
            "kind": "Account",
            "metadata": {"id": "acme"},
            "spec": {"sms_access": True, "sender": "+358451234567", "time_zone": "Europe/Helsinki"},
        }
    ]
    for i in range(n):
        groups = [
            [
                *(_filter(rng) for _ in range(rng.choice([2, 2, 3]))),
                *(_filter(rng, selective=False) for _ in range(rng.choice([0, 1]))),
            ]
            for _ in range(rng.choice([1, 1, 2]))
        ]
        spec: dict[str, Any] = {
            "enabled": True,
            "enrollment": {
                "criteria": groups,
                "reenroll_on": [rng.choice(TEXT_PROPS)] if rng.random() < 0.2 else [],
            },
            "suppression": [[_filter(rng)]] if rng.random() < 0.3 else [],
            "actions": [
                {"type": "set_marketing_contact_status", "marketing": True},
                {"type": "delay", "days": 1},
                {"type": "send_sms", "message": "welcome"},
            ],
        }
        documents.append(
            {
                "apiVersion": "smsflow/v1",
                "kind": "Workflow",
                "metadata": {"id": f"wf-{i}", "account": "acme"},
                "spec": spec,
            }
        )
    return documents


def new_contact(rng: random.Random, contact: int) -> ContactChange:
    """A contact with 10 properties: 8 referenced by criteria, 2 not."""
    names = rng.sample(list(VOCAB), 8)
    properties = {name: rng.choice(VOCAB[name]) for name in names}
    properties |= {"firstname": f"name-{contact}", "page_views": rng.randint(0, 500)}
    return ContactChange(account_id="acme", contact_id=str(contact), properties=properties)


def update(rng: random.Random, contacts: int, referenced_share: float) -> ContactChange:
    if rng.random() < referenced_share:
        name = rng.choice(list(VOCAB))
        properties: dict[str, Any] = {name: rng.choice(VOCAB[name])}
    else:
        properties = {rng.choice(UNREFERENCED): rng.randint(0, 10**6)}
    return ContactChange(
        account_id="acme", contact_id=str(rng.randrange(contacts)), properties=properties
    )


def definitions() -> Definitions:
    held = Definitions()
    for document in workflow_documents():
        held.apply(DefinitionApplied.model_validate({"document": document}))
    return held


# ---------------------------------------------------------------- the pure core


def contact_store(index: WorkflowIndex, contacts: int, seed: int) -> dict[bytes, bytes]:
    """Encoded contact states as the engine makes them from new 10-property contacts."""
    rng = random.Random(seed)
    store: dict[bytes, bytes] = {}
    now = time.time()
    for contact in range(contacts):
        change = new_contact(rng, contact)
        engine = ContactEngine(index, change.key, None, now)
        engine.apply_change(change)
        store[change.key.encode()] = encode_state(engine.state)
    return store


def core_rate(
    index: WorkflowIndex, store: dict[bytes, bytes], referenced_share: float, seed: int = 11
) -> float:
    rng = random.Random(seed)
    store = dict(store)
    changes = [update(rng, CORE_CONTACTS, referenced_share) for _ in range(CORE_CHANGES)]
    now = time.time()
    # CPU time of this process: the figure is "per core", whatever else the machine runs.
    started = time.process_time()
    for change in changes:
        key = change.key
        raw_key = key.encode()
        engine = ContactEngine(index, key, decode_state(store.get(raw_key)), now)
        engine.apply_change(change)
        if engine.effects.dirty:
            store[raw_key] = encode_state(engine.state)
    return len(changes) / (time.process_time() - started)


def state_memory_mb(index: WorkflowIndex) -> float:
    """Resident memory of MEMORY_CONTACTS records as the enroller's memory stores keep them:
    one ``MemoryStore`` per partition, contact key -> encoded state."""
    sample = list(contact_store(index, MEMORY_SAMPLE, seed=23).values())
    gc.collect()
    before = _rss_mb(os.getpid())
    stores = [MemoryStore() for _ in range(6)]
    for contact in range(MEMORY_CONTACTS):
        raw = bytes(bytearray(sample[contact % MEMORY_SAMPLE]))  # a distinct object
        stores[contact % 6].put(f"acme:{contact}", raw, raw)
    gc.collect()
    grown = _rss_mb(os.getpid()) - before
    del stores, sample
    return grown * 100_000 / MEMORY_CONTACTS


# ---------------------------------------------------------------- the process on the broker


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _handled(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"smsflow_enroller_records_total\{[^}]*\} (\S+)", text)
    )


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _produce(settings: KafkaSettings, changes: list[ContactChange]) -> None:
    producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
    topic = settings.topic(CONTACT_CHANGES)
    for change in changes:
        producer.send(topic, key=change.key.encode(), value=change.model_dump_json().encode())
    producer.flush(60)
    producer.close()


def _wait_handled(port: int, target: float, deadline: float) -> float:
    while time.monotonic() < deadline:
        if _handled(port) >= target:
            return time.perf_counter()
        time.sleep(0.25)  # each scrape costs the enroller a few ms of CPU
    raise TimeoutError(f"enroller handled {_handled(port):.0f} of {target:.0f} in time")


def process_figures(bootstrap: str) -> dict[str, float]:
    settings = KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"bench{os.getpid()}x{int(time.time()) % 100000}.",
        partitions=6,
    )
    create_topics(settings)
    producer = make_producer(settings)
    for document in workflow_documents():
        event = DefinitionApplied.model_validate({"document": document})
        producer.send(
            settings.topic(DEFINITIONS),
            key=event.key.encode(),
            value=event.model_dump_json(by_alias=True).encode(),
        )
    producer.flush(30)
    producer.close()

    rng = random.Random(5)
    contacts = [new_contact(rng, c) for c in range(E2E_CONTACTS)]
    updates = [update(rng, E2E_CONTACTS, 0.1) for _ in range(E2E_UPDATES)]
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "SMSFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SMSFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SMSFLOW_ENROLLER_PORT": str(port),
            "SMSFLOW_ENROLLER_HOST": "127.0.0.1",
            "SMSFLOW_DATA_DIR": data_dir,
        }
        profile = os.environ.get("BENCH_ENROLLER_PROFILE")
        command = ["-c", PROFILED, profile] if profile else ["-m", "services.enroller"]
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + TIME_LIMIT_S
            while not _healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("enroller did not become healthy")
                time.sleep(0.2)
            started = time.perf_counter()
            _produce(settings, contacts)
            loaded = _wait_handled(port, E2E_CONTACTS, time.monotonic() + TIME_LIMIT_S)
            started_updates = time.perf_counter()
            _produce(settings, updates)
            finished = _wait_handled(
                port, E2E_CONTACTS + E2E_UPDATES, time.monotonic() + TIME_LIMIT_S
            )
            rss_mb = _rss_mb(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "enroller_changes_per_s": E2E_UPDATES / (finished - started_updates),
        "enroller_new_contacts_per_s": E2E_CONTACTS / (loaded - started),
        "enroller_rss_mb": rss_mb,
    }


def run(bootstrap: str) -> dict[str, float]:
    index = definitions().index()
    store = contact_store(index, CORE_CONTACTS, seed=3)
    figures = {
        "enroller_core_unreferenced_changes_per_s": core_rate(index, store, 0.1),
        "enroller_core_referenced_changes_per_s": core_rate(index, store, 1.0),
        "enroller_state_mb_per_100k_contacts": state_memory_mb(index),
    }
    del store
    figures |= process_figures(bootstrap)
    return figures


if __name__ == "__main__":
    target = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    for name, value in run(target).items():
        print(f"{name} {value:,.1f}")
