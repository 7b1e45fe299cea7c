"""Idempotency keys and emission ids are functions of the business action only."""

from __future__ import annotations

import hashlib

from schemas.actions import ActionCommand
from schemas.definitions import SendSms
from services.common.idempotency import emission_id, reply_key, sms_key


def test_sms_key_is_derived_from_account_workflow_enrollment_and_action_id() -> None:
    key = sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", "send-welcome")
    text = b"sms:acme:welcome-flow:acme/welcome-flow/1001/1:send-welcome"
    assert key == "sms-" + hashlib.sha256(text).hexdigest()[:32]
    assert key == sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", "send-welcome")


def test_each_part_changes_the_key() -> None:
    base = ("acme", "wf", "acme/wf/1/1", "send-a")
    keys = {
        sms_key(*base),
        sms_key("other", *base[1:]),
        sms_key("acme", "wf2", *base[2:]),
        sms_key("acme", "wf", "acme/wf/1/2", "send-a"),
        sms_key("acme", "wf", "acme/wf/1/1", "send-b"),
    }
    assert len(keys) == 5


def test_the_command_key_uses_the_stable_action_id_not_the_position() -> None:
    """A revision that moves an action keeps its SMS's key (A8)."""
    command = ActionCommand(
        action_id="acme/wf/1/1#send-a",
        account_id="acme",
        contact_id="1",
        workflow_id="wf",
        enrollment_id="acme/wf/1/1",
        step=0,
        action=SendSms(id="send-a", message="welcome"),
    )
    moved = command.model_copy(update={"step": 4})
    assert command.step_id == moved.step_id == "send-a"


def test_reply_keys_and_emission_ids() -> None:
    assert reply_key("acme", "SM1", "help") == reply_key("acme", "SM1", "help")
    assert reply_key("acme", "SM1", "help") != reply_key("acme", "SM2", "help")
    assert emission_id("a#1", 1, "result") != emission_id("a#1", 2, "result")
    assert len(emission_id("x")) == 32
