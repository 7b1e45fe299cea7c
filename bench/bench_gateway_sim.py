"""Requests per second of the gateway simulator's generic API, over loopback.

Starts the simulator as a subprocess on a free port, drives ``POST /v1/messages``
(a fresh Idempotency-Key per request) from a concurrent aiohttp client for a
bounded time and count, and prints ``gateway_sim_requests_per_s N``.

    python bench/bench_gateway_sim.py [SECONDS]
"""

from __future__ import annotations

import asyncio
import itertools
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
READY = re.compile(r"gateway-sim listening on (http://127\.0\.0\.1:\d+)")
CONCURRENCY = 64
MAX_REQUESTS = 1_000_000  # bound the count as well as the time
START_TIMEOUT_S = 20.0
PAYLOAD = {"to": "+358401234567", "from": "+358451234567", "body": "Bench message"}


def run(seconds: float | str = 5.0) -> dict[str, float]:
    """Measure for ``seconds``; returns requests/s, request count and error count.

    ``python -m bench`` passes every bench the Kafka bootstrap address; this one needs
    no broker, so a non-numeric argument means "the default duration".
    """
    duration = _duration(seconds)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway_sim", "--port", "0", "--seed", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base_url = _wait_ready(process)
        done, errors, elapsed = asyncio.run(_load(base_url, duration))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    return {
        "gateway_sim_requests_per_s": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "gateway_sim_requests": float(done),
        "gateway_sim_errors": float(errors),
    }


def _duration(seconds: float | str) -> float:
    try:
        return min(max(float(seconds), 0.5), 60.0)
    except ValueError:
        return 5.0


def _wait_ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=START_TIMEOUT_S):
            raise RuntimeError("gateway simulator did not start in time")
    line = process.stdout.readline()
    match = READY.search(line)
    if match is None:
        raise RuntimeError(f"unexpected start-up line: {line!r}")
    return match.group(1)


async def _load(base_url: str, seconds: float) -> tuple[int, int, float]:
    keys = itertools.count()
    done = errors = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline and done + errors < MAX_REQUESTS:
                headers = {"Idempotency-Key": f"bench-{next(keys)}"}
                async with session.post("/v1/messages", json=PAYLOAD, headers=headers) as reply:
                    await reply.read()
                    if reply.status == 201:
                        done += 1
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return done, errors, elapsed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = run(float(args[0]) if args else 5.0)
    print(f"gateway_sim_requests_per_s {result['gateway_sim_requests_per_s']:.0f}")
    return 0 if result["gateway_sim_errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
