"""The table ``answered-actions``: which commands were answered, and which run again.

A command is run once per ``action_id`` and attempt: a copy (a redelivery, the enroller
re-sending after a restart) runs nothing and is answered again with the stored result (same
event id), since the enroller may have lost its record of the first answer with the state
a crash kept it from writing. The one exception
is ``smsflow dead-letters replay``: a command whose answer was a dead letter (e.g. its
account was not applied yet) runs again when a replay of it arrives, once per replayed dead
letter. The re-run's answer replaces the stored one, so a second copy of the same replay is
answered from the table again. Even a re-run can never send an SMS twice: the SMS's
idempotency key comes from the action's identity (services/common/idempotency.py), not from the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.actions import ActionOutcome, ActionResult


def answer(
    attempt: int, result: ActionResult, dead_lettered: bool, replayed_from: str | None
) -> dict[str, Any]:
    """What the table stores for one answered command."""
    return {
        "attempt": attempt,
        "outcome": result.outcome.value,
        "event_id": result.event_id,
        "dead_lettered": dead_lettered,
        "replayed_from": replayed_from,
        "result": result.model_dump(mode="json", by_alias=True),
    }


def stored_result(prior: Mapping[str, Any]) -> ActionResult | None:
    """The result a command was answered with (None for answers stored before it was kept)."""
    stored = prior.get("result")
    return None if stored is None else ActionResult.model_validate(stored)


def runs(prior: Mapping[str, Any] | None, attempt: int, replayed_from: str | None) -> bool:
    """Whether a command (``attempt``, its ``smsflow-replayed-from`` header) is run."""
    if prior is None:
        return True
    answered = int(prior.get("attempt", 0))
    if answered < attempt:  # a later attempt (e.g. after a deferral)
        return True
    return (
        replayed_from is not None
        and answered == attempt
        and prior.get("outcome") == ActionOutcome.FAILED.value
        # Answers stored before the flag existed: a failed one may have been dead-lettered.
        and bool(prior.get("dead_lettered", True))
        and prior.get("replayed_from") != replayed_from
    )
