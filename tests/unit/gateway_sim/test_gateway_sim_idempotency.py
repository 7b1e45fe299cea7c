"""The Idempotency-Key store: claims, replays, conflicts, release and TTL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway_sim.idempotency import (
    Claim,
    IdempotencyStore,
    StoredResponse,
    fingerprint,
    parse_idempotency_key,
)

CREATED = StoredResponse(201, b'{"id":"msg_1"}')
FP = fingerprint({"to": "+358401234567", "from": "+358451234567", "body": "Hei"})
OTHER_FP = fingerprint({"to": "+358401234567", "from": "+358451234567", "body": "Moi"})


def test_first_request_claims_the_key() -> None:
    store = IdempotencyStore(ttl_s=60)
    assert store.begin("k", FP, now=0).claim is Claim.FRESH
    assert len(store) == 1


@pytest.mark.parametrize(
    ("completed", "second_fp", "expected"),
    [
        (True, FP, Claim.REPLAY),
        (True, OTHER_FP, Claim.MISMATCH),
        (False, FP, Claim.IN_FLIGHT),
        (False, OTHER_FP, Claim.MISMATCH),
    ],
)
def test_second_request(completed: bool, second_fp: str, expected: Claim) -> None:
    store = IdempotencyStore(ttl_s=60)
    store.begin("k", FP, now=0)
    if completed:
        store.complete("k", CREATED, now=1)

    lookup = store.begin("k", second_fp, now=2)

    assert lookup.claim is expected
    assert lookup.response == (CREATED if expected is Claim.REPLAY else None)


def test_stored_error_is_replayed_too() -> None:
    store = IdempotencyStore(ttl_s=60)
    error = StoredResponse(400, b'{"code":21211}')
    store.begin("k", FP, now=0)
    store.complete("k", error, now=0)

    assert store.begin("k", FP, now=1).response == error


def test_released_key_is_processed_fresh() -> None:
    store = IdempotencyStore(ttl_s=60)
    store.begin("k", FP, now=0)
    store.release("k")

    assert store.begin("k", OTHER_FP, now=1).claim is Claim.FRESH


def test_release_after_complete_keeps_the_response() -> None:
    store = IdempotencyStore(ttl_s=60)
    store.begin("k", FP, now=0)
    store.complete("k", CREATED, now=0)
    store.release("k")

    assert store.begin("k", FP, now=1).claim is Claim.REPLAY


def test_second_complete_does_not_overwrite_the_first_answer() -> None:
    store = IdempotencyStore(ttl_s=60)
    store.begin("k", FP, now=0)
    store.complete("k", CREATED, now=0)
    store.complete("k", StoredResponse(400, b"{}"), now=1)

    assert store.begin("k", FP, now=2).response == CREATED


@pytest.mark.parametrize(
    ("now", "expected"),
    [(59.9, Claim.REPLAY), (60.0, Claim.FRESH), (500.0, Claim.FRESH)],
)
def test_keys_expire_ttl_after_their_answer(now: float, expected: Claim) -> None:
    store = IdempotencyStore(ttl_s=50)
    store.begin("k", FP, now=0)
    store.complete("k", CREATED, now=10)

    assert store.begin("k", FP, now=now).claim is expected


def test_in_flight_keys_do_not_expire() -> None:
    store = IdempotencyStore(ttl_s=1)
    store.begin("k", FP, now=0)

    assert store.begin("k", FP, now=1000).claim is Claim.IN_FLIGHT


def test_pruning_keeps_a_key_claimed_again_after_expiry() -> None:
    store = IdempotencyStore(ttl_s=10)
    store.begin("k", FP, now=0)
    store.complete("k", CREATED, now=0)
    assert store.begin("k", FP, now=20).claim is Claim.FRESH  # expired, claimed again
    store.complete("k", StoredResponse(201, b"second"), now=20)

    assert store.begin("other", FP, now=25).claim is Claim.FRESH  # prunes nothing live
    assert store.begin("k", FP, now=25).response == StoredResponse(201, b"second")


def test_expired_keys_are_pruned() -> None:
    store = IdempotencyStore(ttl_s=10)
    for i in range(100):
        store.begin(f"k{i}", FP, now=i)
        store.complete(f"k{i}", CREATED, now=i)

    store.begin("new", FP, now=200)

    assert len(store) == 1


def test_clear_forgets_everything() -> None:
    store = IdempotencyStore(ttl_s=10)
    store.begin("k", FP, now=0)
    store.clear()
    assert len(store) == 0


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        IdempotencyStore(ttl_s=0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ('""', None),
        ("abc", "abc"),
        (' "8e03978e-40d5-43e8-bc93-6894a57f9324" ', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("x" * 255, "x" * 255),
        ("x" * 256, None),
    ],
)
def test_parse_idempotency_key(raw: str | None, expected: str | None) -> None:
    assert parse_idempotency_key(raw) == expected


def test_fingerprint_is_canonical() -> None:
    a = fingerprint({"to": "+1", "from": "+2", "body": "ä"})
    b = fingerprint({"body": "ä", "from": "+2", "to": "+1"})
    assert a == b
    assert len(a) == 64


@pytest.mark.parametrize(
    "other",
    [
        {"to": "+1", "from": "+2", "body": "x "},
        {"to": "+1", "from": "+3", "body": "x"},
        {"to": "+1", "from": "+2", "body": None},
        {"to": "+1", "from": "+2"},
    ],
)
def test_fingerprint_tells_payloads_apart(other: dict[str, object]) -> None:
    assert fingerprint({"to": "+1", "from": "+2", "body": "x"}) != fingerprint(other)


@given(st.dictionaries(st.sampled_from(["to", "from", "body"]), st.text()))
def test_fingerprint_ignores_key_order(fields: dict[str, str]) -> None:
    assert fingerprint(fields) == fingerprint(dict(reversed(list(fields.items()))))
