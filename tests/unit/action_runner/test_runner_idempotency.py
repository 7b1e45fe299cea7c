"""Idempotency keys and emission ids are functions of the business action only."""

from __future__ import annotations

import hashlib

from services.action_runner.idempotency import emission_id, reply_key, sms_key


def test_sms_key_is_derived_from_account_workflow_enrollment_and_step() -> None:
    key = sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", 3)
    digest = hashlib.sha256(b"sms:acme:welcome-flow:acme/welcome-flow/1001/1:3").hexdigest()
    assert key == "sms-" + digest[:32]
    assert key == sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", 3)


def test_each_part_changes_the_key() -> None:
    base = ("acme", "wf", "acme/wf/1/1", 3)
    keys = {
        sms_key(*base),
        sms_key("other", *base[1:]),
        sms_key("acme", "wf2", *base[2:]),
        sms_key("acme", "wf", "acme/wf/1/2", 3),
        sms_key("acme", "wf", "acme/wf/1/1", 4),
    }
    assert len(keys) == 5


def test_reply_keys_and_emission_ids() -> None:
    assert reply_key("acme", "SM1", "help") == reply_key("acme", "SM1", "help")
    assert reply_key("acme", "SM1", "help") != reply_key("acme", "SM2", "help")
    assert emission_id("a#1", 1, "result") != emission_id("a#1", 2, "result")
    assert len(emission_id("x")) == 32
