"""Idempotency-Key store (IETF httpapi idempotency-key draft semantics).

Pure: no I/O; the caller passes ``now`` (seconds on any monotonic clock).
A key is claimed while its first request is processed (a concurrent retry gets
409), then holds the first response for ``ttl_s`` seconds after it was answered
(a retry gets that response back; the same key with another payload gets 422).
Refusals that never processed the request (5xx, 429) release the claim instead
of storing anything, so the retry is processed fresh.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

MAX_KEY_LENGTH = 255


def parse_idempotency_key(raw: str | None) -> str | None:
    """The key from the header value; the draft sends it as a quoted sf-string."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    return key


def fingerprint(fields: Mapping[str, object]) -> str:
    """sha256 over canonical JSON (sorted keys, no whitespace) of the fields that matter."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


class Claim(enum.Enum):
    FRESH = "fresh"  # key claimed now: process the request, then complete() or release()
    REPLAY = "replay"  # answered before with the same payload: return the stored response
    IN_FLIGHT = "in_flight"  # first request still being processed: 409
    MISMATCH = "mismatch"  # key used before with another payload: 422


@dataclass(frozen=True)
class Lookup:
    claim: Claim
    response: StoredResponse | None = None


@dataclass
class _Entry:
    fingerprint: str
    response: StoredResponse | None = None
    expires_at: float = float("inf")


class IdempotencyStore:
    def __init__(self, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}
        # Completed keys in completion order; with a fixed TTL that is expiry order,
        # so pruning only ever looks at the front.
        self._expiry: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: str, fingerprint: str, now: float) -> Lookup:
        self._prune(now)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(fingerprint)
            return Lookup(Claim.FRESH)
        if entry.fingerprint != fingerprint:
            return Lookup(Claim.MISMATCH)
        if entry.response is None:
            return Lookup(Claim.IN_FLIGHT)
        return Lookup(Claim.REPLAY, entry.response)

    def complete(self, key: str, response: StoredResponse, now: float) -> None:
        """Store the first response of a claimed key (ignored if the claim is gone)."""
        entry = self._entries.get(key)
        if entry is None or entry.response is not None:
            return
        entry.response = response
        entry.expires_at = now + self.ttl_s
        self._expiry.append((entry.expires_at, key))

    def release(self, key: str) -> None:
        """Drop an unanswered claim: the request was never processed."""
        entry = self._entries.get(key)
        if entry is not None and entry.response is None:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
        self._expiry.clear()

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, key = self._expiry.popleft()
            entry = self._entries.get(key)
            # The key may have been released and claimed again since; keep that one.
            if entry is not None and entry.expires_at == expires_at:
                del self._entries[key]
