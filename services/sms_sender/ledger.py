"""The in-memory ledger of idempotency keys and the rules it follows. Pure.

Every key's latest ``SmsLedgerEntry``; fed by the sender's own writes and by the
``sms-ledger`` topic. States only move forward (``can_follow``), so a stale or
duplicate entry from the topic never undoes a newer one, and a settled key is never
sent again (``plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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


class Ledger:
    """Latest entry per key, the partition it lives in, and provider id -> key."""

    def __init__(self) -> None:
        self._entries: dict[str, SmsLedgerEntry] = {}
        self._partitions: dict[str, int] = {}
        self._by_provider_id: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> SmsLedgerEntry | None:
        return self._entries.get(key)

    def partition_of(self, key: str) -> int | None:
        return self._partitions.get(key)

    def key_for_provider_id(self, provider_message_id: str) -> str | None:
        return self._by_provider_id.get(provider_message_id)

    def apply(self, entry: SmsLedgerEntry, partition: int) -> bool:
        """Take ``entry`` if it may follow the current one; True when it did."""
        key = entry.idempotency_key
        if not can_follow(self._entries.get(key), entry):
            return False
        self._entries[key] = entry
        self._partitions[key] = partition
        if entry.provider_message_id:
            self._by_provider_id[entry.provider_message_id] = key
        return True
