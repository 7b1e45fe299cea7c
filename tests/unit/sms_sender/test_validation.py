"""Requests that must never reach the rate limiter or the gateway, and small dead letters."""

from __future__ import annotations

import pytest

from services.common.dead_letters import MAX_VALUE_BYTES, dead_letter
from services.sms_sender.validation import problem
from tests.unit.sms_sender.factories import request


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        ({}, None),
        ({"idempotency_key": "sms-key\r\nX-Evil: 1"}, "idempotency_key"),
        ({"idempotency_key": "sms key 0001"}, "idempotency_key"),
        ({"idempotency_key": "sms-kéy-0001"}, "idempotency_key"),
        ({"segments": 10}, None),
        ({"segments": 11}, "segments: 11"),
        ({"segments": 10**9}, "segments: 1000000000"),
        ({"body": "x" * 1600}, None),
        ({"body": "x" * 1601}, "body: 1601 characters"),
    ],
)
def test_request_checks(changes: dict[str, object], found: str | None) -> None:
    reason = problem(request(1, **changes), max_segments=10)
    if found is None:
        assert reason is None
    else:
        assert reason is not None
        assert found in reason


def _letter(value: bytes | None, key: bytes | None = b"k"):  # type: ignore[no-untyped-def]
    return dead_letter(
        service="sms-sender",
        topic="t",
        partition=0,
        offset=1,
        key=key,
        value=value,
        reason="bad",
    )


def test_a_small_value_is_kept_whole() -> None:
    letter = _letter(b'{"a": 1}')
    assert (letter.value, letter.value_truncated, letter.value_size) == ('{"a": 1}', False, 8)


def test_a_huge_value_is_cut_to_its_start_and_says_so() -> None:
    letter = _letter("ä".encode() * 200_000)  # 400 KB; the cut falls inside a character
    assert letter.value_truncated
    assert letter.value_size == 400_000
    assert letter.value_encoding == "utf-8"
    assert letter.value is not None
    assert set(letter.value) == {"ä"}
    assert len(letter.value.encode()) <= MAX_VALUE_BYTES
    assert len(letter.model_dump_json()) < 1024 * 1024


def test_huge_binary_and_key_stay_small() -> None:
    letter = _letter(b"\xff\x00" * 300_000, key=b"k" * 100_000)
    assert letter.value_encoding == "base64"
    assert letter.value_truncated
    assert len(letter.key or "") == 1024
    assert len(letter.model_dump_json()) < 1024 * 1024
