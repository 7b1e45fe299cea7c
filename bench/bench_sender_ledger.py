"""The sender ledger's resident memory while 1M idempotency keys pass through it.

Each key goes ``sending`` -> ``sent`` -> ``delivered``, as in production, through the
same ``Ledger`` the sender runs (open and recent keys in memory, every key in RocksDB).
Resident memory is sampled from /proc as keys pass; flat means the growth from the first
sample to the last stays small however many keys follow.

    python bench/bench_sender_ledger.py [KEYS]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from schemas.ledger import LedgerState  # noqa: E402
from schemas.sms import SmsRequest  # noqa: E402
from services.sms_sender.ledger import Ledger, RocksStore  # noqa: E402
from services.sms_sender.statuses import advance, new_entry  # noqa: E402

KEYS = int(os.environ.get("SMSFLOW_BENCH_LEDGER_KEYS", "1000000"))
SAMPLES = 10


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(bootstrap: str | None = None, keys: int = KEYS) -> dict[str, float]:
    """``bootstrap`` is unused: the ledger alone, without Kafka."""
    template = SmsRequest.model_validate(
        {
            "idempotency_key": "bench-0000000000",
            "account_id": "acme",
            "contact_id": "c1",
            "workflow_id": "welcome-flow",
            "enrollment_id": "enr-1",
            "message_id": "welcome",
            "to": "+358401234567",
            "from": "+358451234567",
            "body": "Hei! Tervetuloa.",
            "encoding": "gsm7",
            "segments": 1,
            "to_masked": "+35840*****67",
        }
    )
    base = new_entry(template, LedgerState.SENDING, api="http", attempts=1)
    store = RocksStore()
    ledger = Ledger(store)
    every = max(keys // SAMPLES, 1)
    samples: list[float] = []
    started = time.perf_counter()
    try:
        for n in range(keys):
            key = f"bench-{n:010d}"
            sending = base.model_copy(update={"idempotency_key": key})
            ledger.apply(sending, n % 6)
            sent = advance(sending, LedgerState.SENT, provider_message_id=f"msg_{n:010d}")
            ledger.apply(sent, n % 6)
            ledger.apply(advance(sent, LedgerState.DELIVERED), n % 6)
            if (n + 1) % every == 0:
                samples.append(_rss_mb())
        elapsed = time.perf_counter() - started
        assert len(ledger) == keys
        assert ledger.get("bench-0000000000") is not None  # the oldest, read from disk
    finally:
        store.close()
    first, last = samples[0], samples[-1]
    return {
        "sender_ledger_keys": float(keys),
        "sender_ledger_rss_mb_first_tenth": first,
        "sender_ledger_rss_mb_at_end": last,
        "sender_ledger_rss_growth_mb_after_first_tenth": last - first,
        "sender_ledger_keys_per_s": keys / elapsed,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else KEYS
    for name, value in run(None, count).items():
        print(f"{name:<48} {value:,.1f}")
