"""A workflow's actions as steps addressed by their stable ids (A8), never by position.

Pure. ``compile_plan`` gives every action its id (written, or derived from its content) and
the id of the step that follows it; a ``branch`` step also knows the first step of each of
its paths, and the last step of a path continues after the branch. An enrollment
remembers the id of the step it is at and the ids of the steps it has finished, so a new
revision of the workflow is read like this:

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

from schemas.contacts import PropertyValue
from schemas.definitions import DEFAULT_BRANCH, Action, Branch, action_ids

from .criteria import CompiledCriteria, compile_criteria


@dataclass(frozen=True, slots=True)
class Way:
    """One path out of a branch step."""

    name: str
    criteria: CompiledCriteria | None  # None: the default path
    first: str | None  # its first step; the step after the branch when it has none


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    action: Action  # carries ``id``, so the command names the step it runs
    position: int  # in the order the actions are written (nested ones included)
    next: str | None  # the step after this one; None: the workflow ends
    ways: tuple[Way, ...] = ()  # a branch's paths, the default one last

    def choose(self, properties: Mapping[str, PropertyValue]) -> Way:
        """HubSpot's if/then: the first path whose criteria match, else the default."""
        return next(w for w in self.ways if w.criteria is None or w.criteria.matches(properties))


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


@dataclass(slots=True)
class _Node:
    position: int
    id: str
    action: Action
    paths: list[tuple[str, CompiledCriteria | None, list[_Node]]]


def compile_plan(actions: Sequence[Action]) -> Plan:
    nodes = _number(actions, iter(enumerate(action_ids(actions))))
    steps: dict[str, Step] = {}
    first = _link(nodes, None, steps)
    order = tuple(sorted(steps, key=lambda step_id: steps[step_id].position))
    return Plan(first=first, steps=steps, order=order)


def _number(actions: Sequence[Action], ids: Iterator[tuple[int, str]]) -> list[_Node]:
    """Numbers the actions in ``walk_actions`` order, which is how ``action_ids`` counts."""
    nodes: list[_Node] = []
    for action in actions:
        position, step_id = next(ids)
        node = _Node(position, step_id, action, [])
        if isinstance(action, Branch):
            for path in action.branches:
                node.paths.append(
                    (path.name, compile_criteria(path.criteria), _number(path.actions, ids))
                )
            node.paths.append((DEFAULT_BRANCH, None, _number(action.default, ids)))
        nodes.append(node)
    return nodes


def _link(nodes: Sequence[_Node], then: str | None, steps: dict[str, Step]) -> str | None:
    """Adds the steps of one list; ``then`` is where the list continues. Returns the id of
    its first step (``then`` when it is empty)."""
    following = then
    for node in reversed(nodes):
        ways = tuple(
            Way(name, criteria, _link(path, following, steps))
            for name, criteria, path in node.paths
        )
        action = node.action
        named = action if action.id == node.id else action.model_copy(update={"id": node.id})
        steps[node.id] = Step(node.id, named, node.position, following, ways)
        following = node.id
    return following
