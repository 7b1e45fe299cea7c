"""Runs every ``bench/bench_*.py`` and prints each figure on its own line.

Each module exposes ``run(bootstrap) -> dict[str, float]``. Figures whose name ends in
``_per_s`` are also printed as a ratio of the raw Kafka round-trip rate measured first.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from bench.kafka_baseline import measure


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3f}"


def main(argv: list[str]) -> int:
    bootstrap = os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    only = set(argv)
    baseline = measure(bootstrap)
    for name, value in baseline.items():
        print(f"{name:<44} {_fmt(value):>14}", flush=True)
    raw = baseline["raw_roundtrip_per_s"]
    failed = 0
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        started = time.perf_counter()
        try:
            figures = importlib.import_module(f"bench.{path.stem}").run(bootstrap)
        except Exception as exc:  # one broken bench must not hide the others' figures
            print(f"{path.stem}: FAILED {type(exc).__name__}: {exc}", flush=True)
            failed += 1
            continue
        for name, value in figures.items():
            ratio = f"  ({value / raw:.2f} x raw round trip)" if name.endswith("_per_s") else ""
            print(f"{name:<44} {_fmt(value):>14}{ratio}", flush=True)
        print(f"# {path.stem} took {time.perf_counter() - started:.1f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
