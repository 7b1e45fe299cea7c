"""The ledger of idempotency keys and the rules it follows.

Every key's latest ``SmsLedgerEntry`` (open and recent keys in memory, all of them in a
key-value store); fed by the sender's own writes and by the ``sms-ledger`` topic. States
only move forward (``can_follow``), so a stale or duplicate entry from the topic never
undoes a newer one, and a settled key is never sent again (``plan``). The rules are pure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import rocksdict

from schemas.ledger import SETTLED_STATES, LedgerState, SmsLedgerEntry

S = LedgerState
AMBIGUOUS_OUTCOME = "ambiguous_outcome"
_OPEN = frozenset({S.SENDING, S.RETRYING, S.UNKNOWN})
_DELIVERY = frozenset({S.DELIVERED, S.UNDELIVERED})


def can_follow(old: SmsLedgerEntry | None, new: SmsLedgerEntry) -> bool:
    """Whether ``new`` may replace ``old`` as the latest entry of a key."""
    if old is None or old.state in _OPEN:
        if old is not None and new.state is S.SENDING:
            # A claim must be newer than every claim before it: two instances that both
            # saw attempt n cannot both claim attempt n + 1.
            return new.attempts > old.attempts
        return not (old is not None and new.state in _OPEN and new.attempts < old.attempts)
    if old.state is S.SENT:
        return new.state in _DELIVERY or new.state is S.FAILED
    if old.state is S.FAILED and old.reason == AMBIGUOUS_OUTCOME:
        # A callback proves what the ambiguous send did after all.
        return new.state in _DELIVERY or new.state is S.SENT
    return False  # delivered, undelivered, failed: final


@dataclass(frozen=True)
class Skip:
    """Settled: never call the gateway again; re-announce the recorded outcome."""

    entry: SmsLedgerEntry


@dataclass(frozen=True)
class Send:
    """Call the gateway; ``attempts`` were made before (resends reuse the key)."""

    attempts: int = 0
    ambiguous_before: bool = False


@dataclass(frozen=True)
class Await:
    """Sent perhaps, through an API without de-duplication: wait for a callback."""

    entry: SmsLedgerEntry
    deadline: datetime


Plan = Skip | Send | Await


def foreign_claim(entry: SmsLedgerEntry | None, writer: str) -> bool:
    """An open ``sending`` claim of another live instance: wait for it, never race it."""
    return (
        entry is not None
        and entry.state is S.SENDING
        and entry.writer is not None
        and entry.writer != writer
    )


def replay_safe(entry: SmsLedgerEntry | None, now: datetime, window_s: float) -> bool:
    """Whether the gateway still remembers the key: its first call is within the window."""
    if entry is None or entry.api != "http":
        return entry is None
    first = entry.first_attempt_at or entry.occurred_at
    return (now - first).total_seconds() < window_s


def plan(
    entry: SmsLedgerEntry | None,
    ambiguous_wait_s: float,
    now: datetime | None = None,
    replay_window_s: float = float("inf"),
) -> Plan:
    """What to do with a request whose key is in state ``entry``."""
    if entry is None:
        return Send()
    if entry.state in SETTLED_STATES:
        return Skip(entry)
    if entry.state is S.RETRYING and entry.api != "http":
        # Twilio: an ambiguous attempt is never followed by a resend, so only refusals
        # (never processed) came before: safe.
        return Send(entry.attempts)
    if entry.api == "http" and replay_safe(entry, now or entry.occurred_at, replay_window_s):
        # The generic API replays the first answer for a key: resending cannot duplicate.
        return Send(entry.attempts, ambiguous_before=entry.state is not S.RETRYING)
    # sending (the process died mid-request) or unknown, on an API that would send twice,
    # or whose memory of the key has expired.
    return Await(entry, entry.occurred_at + timedelta(seconds=ambiguous_wait_s))


class KeyStore(Protocol):
    """Bytes by bytes key: a ``dict`` in tests, RocksDB (``RocksStore``) in the service."""

    def get(self, key: bytes) -> bytes | None: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...


class RocksStore:
    """A RocksDB directory of its own, deleted on close: the ledger topic is the truth,
    and a restart rebuilds from it."""

    def __init__(self, parent: str | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="sms-sender-ledger-", dir=parent)
        self._options = rocksdict.Options(raw_mode=True)
        self._db = rocksdict.Rdict(os.path.join(self._dir, "db"), self._options)

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return value if isinstance(value, bytes) else None

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def close(self) -> None:
        self._db.close()
        rocksdict.Rdict.destroy(os.path.join(self._dir, "db"), self._options)
        shutil.rmtree(self._dir, ignore_errors=True)


class Ledger:
    """Latest entry per key, the partition it lives in, provider id -> key and link code -> key.

    Memory stays bounded whatever the number of keys: open keys (being sent) always stay
    in memory, the ``recent`` settled ones in an LRU, and every entry is written through
    to ``store`` (on disk in the service), where older keys are read back from.
    """

    def __init__(self, store: KeyStore | None = None, recent: int = 50_000) -> None:
        self._store: KeyStore = store if store is not None else {}
        self._recent_max = recent
        self._open: dict[str, tuple[SmsLedgerEntry, int]] = {}
        self._recent: OrderedDict[str, tuple[SmsLedgerEntry, int]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, key: str) -> SmsLedgerEntry | None:
        found = self._lookup(key)
        return found[0] if found else None

    def partition_of(self, key: str) -> int | None:
        found = self._lookup(key)
        return found[1] if found else None

    def key_for_provider_id(self, provider_message_id: str) -> str | None:
        key = self._store.get(_PROVIDER + provider_message_id.encode())
        return key.decode() if key is not None else None

    def link(self, code: str) -> tuple[SmsLedgerEntry, str] | None:
        """The entry of the SMS whose tracked link has ``code``, and that link's URL."""
        key = self._store.get(_LINK + code.encode())
        entry = self.get(key.decode()) if key is not None else None
        url = (entry.links or {}).get(code) if entry is not None else None
        return None if entry is None or url is None else (entry, url)

    def apply(self, entry: SmsLedgerEntry, partition: int) -> bool:
        """Take ``entry`` if it may follow the current one; True when it did."""
        key = entry.idempotency_key
        old = self._lookup(key)
        if not can_follow(old[0] if old else None, entry):
            return False
        if old is None:
            self._count += 1
        self._keep(key, entry, partition)
        self._store[_ENTRY + key.encode()] = b"%d|" % partition + entry.model_dump_json().encode()
        if entry.provider_message_id:
            self._store[_PROVIDER + entry.provider_message_id.encode()] = key.encode()
        for code in entry.links or ():
            self._store[_LINK + code.encode()] = key.encode()
        return True

    def _lookup(self, key: str) -> tuple[SmsLedgerEntry, int] | None:
        found = self._open.get(key)
        if found is not None:
            return found
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
            return found
        raw = self._store.get(_ENTRY + key.encode())
        if raw is None:
            return None
        partition, _, payload = raw.partition(b"|")
        loaded = (SmsLedgerEntry.model_validate_json(payload), int(partition))
        self._keep(key, *loaded)
        return loaded

    def _keep(self, key: str, entry: SmsLedgerEntry, partition: int) -> None:
        if entry.state in _OPEN:
            self._recent.pop(key, None)
            self._open[key] = (entry, partition)
            return
        self._open.pop(key, None)
        self._recent[key] = (entry, partition)
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)  # already in the store


_ENTRY = b"e:"
_PROVIDER = b"p:"
_LINK = b"l:"
