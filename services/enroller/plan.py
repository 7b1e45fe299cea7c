"""A workflow's actions as steps addressed by their stable ids (A8), never by position.

Pure. ``compile_plan`` gives every action its id (written, or derived from its content) and
the id of the step that follows it. An enrollment remembers the id of the step it is at
and the ids of the steps it has finished, so a new revision of the workflow is read like
this:

* a contact at a step that still exists carries on with the steps that follow it in the
  new revision; steps inserted before it are never run for it;
* a step already finished in this enrollment is never run again, wherever a revision
  moves it;
* when the step the contact is at was removed, it carries on after the last step it
  finished that still exists (the next surviving step of the old order, for insertions
  and removals), or at the start of the new revision when none of them survived.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from schemas.definitions import Action, action_ids


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    action: Action  # carries ``id``, so the command names the step it runs
    position: int  # in the order the actions are written (nested ones included)
    next: str | None  # the step after this one; None: the workflow ends


@dataclass(frozen=True, slots=True)
class Plan:
    first: str | None
    steps: Mapping[str, Step]
    order: tuple[str, ...]  # every step id, in the order the actions are written

    def __len__(self) -> int:
        return len(self.order)

    def step(self, step_id: str) -> Step | None:
        return self.steps.get(step_id)

    def after(self, finished: Sequence[str]) -> str | None:
        """Where an enrollment that finished ``finished`` (in that order) goes next."""
        for step_id in reversed(finished):
            step = self.steps.get(step_id)
            if step is not None:
                return step.next
        return self.first


def compile_plan(actions: Sequence[Action]) -> Plan:
    ids = iter(enumerate(action_ids(actions)))
    steps: dict[str, Step] = {}
    first = _link(actions, None, ids, steps)
    return Plan(
        first=first, steps=steps, order=tuple(sorted(steps, key=lambda s: steps[s].position))
    )


def _link(
    actions: Sequence[Action],
    then: str | None,
    ids: Iterator[tuple[int, str]],
    steps: dict[str, Step],
) -> str | None:
    """Adds the steps of one list of actions, numbered in ``walk_actions`` order; ``then``
    is where the list continues. Returns the id of its first step (``then`` when empty)."""
    named: list[tuple[int, str, Action]] = []
    for action in actions:
        position, step_id = next(ids)
        named.append((position, step_id, action))
    following = then
    for position, step_id, action in reversed(named):
        update = {} if action.id == step_id else {"id": step_id}
        steps[step_id] = Step(step_id, action.model_copy(update=update), position, following)
        following = step_id
    return following
