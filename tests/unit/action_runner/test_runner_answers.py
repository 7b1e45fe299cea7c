"""Which commands the runner runs, and which it answers from ``answered-actions``."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.actions import ActionOutcome
from services.action_runner.answers import answer, runs
from services.action_runner.commands import handle_command
from tests.unit.action_runner.defs import NOON, SUBSCRIBED, Defs, command

REPLAY = "dead-letters:0@7"


def stored(
    outcome: ActionOutcome, dead_lettered: bool, replayed_from: str | None = None
) -> dict[str, Any]:
    result = handle_command(command(), Defs(), SUBSCRIBED, NOON).result
    return answer(1, result.model_copy(update={"outcome": outcome}), dead_lettered, replayed_from)


def test_a_new_command_or_a_later_attempt_runs() -> None:
    assert runs(None, 1, None)
    assert runs(stored(ActionOutcome.DEFERRED, False), 2, None)


def test_a_copy_of_an_answered_command_is_answered_from_the_table() -> None:
    for outcome in ActionOutcome:
        assert not runs(stored(outcome, outcome is ActionOutcome.FAILED), 1, None)


def test_a_replayed_dead_letter_runs_again() -> None:
    assert runs(stored(ActionOutcome.FAILED, True), 1, REPLAY)
    # Stored before the flag existed: the failure may have been dead-lettered.
    legacy = {"attempt": 1, "outcome": "failed", "event_id": "e"}
    assert runs(legacy, 1, REPLAY)


@pytest.mark.parametrize(
    ("prior", "attempt"),
    [
        # The replay's re-run was answered: the same replay delivered twice runs once.
        (stored(ActionOutcome.DONE, False, REPLAY), 1),
        (stored(ActionOutcome.FAILED, True, REPLAY), 1),
        # Only a dead-lettered failure is replayed; a done or skipped answer stands.
        (stored(ActionOutcome.DONE, False), 1),
        (stored(ActionOutcome.SKIPPED, False), 1),
        (stored(ActionOutcome.FAILED, False), 1),
        # A later attempt already answered: the replay of an earlier one is stale.
        ({**stored(ActionOutcome.FAILED, True), "attempt": 2}, 1),
    ],
)
def test_a_replay_does_not_run_an_answer_that_stands(prior: dict[str, Any], attempt: int) -> None:
    assert not runs(prior, attempt, REPLAY)


def test_another_replay_of_a_failed_rerun_runs_again() -> None:
    # The re-run failed again (e.g. the account is still missing) and a newer dead letter of
    # the same command is replayed: that one is a new replay.
    assert runs(stored(ActionOutcome.FAILED, True, REPLAY), 1, "dead-letters:1@9")
