"""Deterministic names for what the action runner emits: derived from the business action, never
from time or randomness, so a replayed or re-sent command yields the same ones."""

from __future__ import annotations

import hashlib


def _digest(text: str, length: int = 32) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sms_key(account_id: str, workflow_id: str, enrollment_id: str, action_id: str) -> str:
    """The SMS sender's idempotency key for the SMS of one workflow action of one enrollment.

    ``action_id`` is the action's stable id (A8), not its position: a revision that inserts
    or removes other actions leaves the key alone, so a resend of that SMS is recognised.
    """
    return "sms-" + _digest(f"sms:{account_id}:{workflow_id}:{enrollment_id}:{action_id}")


def reply_key(account_id: str, inbound_id: str, kind: str) -> str:
    """The key of the reply (HELP text, STOP/START confirmation) to one inbound message."""
    return "reply-" + _digest(f"reply:{account_id}:{inbound_id}:{kind}")


def emission_id(*parts: object) -> str:
    """An ``event_id`` for an event the runner emits while handling one input.

    Handling the same input again (a replay after a crash) emits the same event again, so
    it carries the same id and consumers that drop repeated ids drop it.
    """
    return _digest("|".join(str(p) for p in parts))
