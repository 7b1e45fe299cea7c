"""Compiled workflows, indexed by the properties that can change their verdict.

Pure. A contact change re-evaluates only the workflows whose criteria, suppression or
re-enrollment triggers mention a changed property; a change touching none of them costs a
few set look-ups. A brand-new contact also meets the workflows with a group that matches
blank values (``is_unknown``, ``neq`` ...), since nothing it sets is needed for those.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from schemas.contacts import PropertyValue
from schemas.definitions import ObjectType, SendingWindow, Workflow

from .criteria import NOTHING, CompiledCriteria, compile_criteria
from .plan import Plan, compile_plan
from .values import as_text


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    account_id: str
    workflow_id: str
    revision: int
    enabled: bool
    criteria: CompiledCriteria
    suppression: CompiledCriteria
    reenroll_on: frozenset[str]
    enroll_existing: bool
    unenroll_when_criteria_unmet: bool
    plan: Plan  # the actions as steps addressed by their stable ids
    goal: CompiledCriteria = NOTHING  # meeting it ends the enrollment (goal_met)
    window: SendingWindow | None = None  # actions run only inside it, recipient time

    @property
    def properties(self) -> frozenset[str]:
        return (
            self.criteria.properties
            | self.suppression.properties
            | self.reenroll_on
            | self.goal.properties
        )

    def goal_met(self, properties: Mapping[str, object]) -> bool:
        return bool(self.goal) and self.goal.matches(properties)  # type: ignore[arg-type]

    def matches(self, properties: Mapping[str, object]) -> bool:
        return self.criteria.matches(properties)  # type: ignore[arg-type]

    def suppressed(self, properties: Mapping[str, object]) -> bool:
        return bool(self.suppression) and self.suppression.matches(properties)  # type: ignore[arg-type]


def compile_workflow(workflow: Workflow, revision: int = 1) -> CompiledWorkflow:
    spec = workflow.spec
    return CompiledWorkflow(
        account_id=workflow.account_id,
        workflow_id=workflow.metadata.id,
        revision=revision,
        enabled=spec.enabled,
        criteria=compile_criteria(spec.enrollment.criteria),
        suppression=compile_criteria(spec.suppression),
        reenroll_on=frozenset(spec.enrollment.reenroll_on),
        enroll_existing=spec.enrollment.enroll_existing,
        unenroll_when_criteria_unmet=spec.enrollment.unenroll_when_criteria_unmet,
        plan=compile_plan(spec.actions),
        goal=compile_criteria(spec.goal.criteria) if spec.goal is not None else NOTHING,
        window=spec.sending_window,
    )


@dataclass(slots=True)
class AccountWorkflows:
    time_zone: str = "UTC"
    default_region: str = "US"  # for phone numbers written without +country code
    workflows: dict[str, CompiledWorkflow] = field(default_factory=dict)
    by_property: dict[str, set[str]] = field(default_factory=dict)
    blank_matchers: set[str] = field(default_factory=set)
    # Workflows with a group that can only match a contact holding this (property, text)
    # value, or both values of a pair of them (for groups with two or more such filters);
    # and those with a group without such requirements (always worth evaluating).
    by_anchor: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    by_anchor_pair: dict[tuple[tuple[str, str], tuple[str, str]], set[str]] = field(
        default_factory=dict
    )
    unanchored: set[str] = field(default_factory=set)

    def add(self, workflow: CompiledWorkflow) -> None:
        wid = workflow.workflow_id
        self.workflows[wid] = workflow
        for name in workflow.properties:
            self.by_property.setdefault(name, set()).add(wid)
        if workflow.criteria.matches_blank:
            self.blank_matchers.add(wid)
        for anchors in workflow.criteria.anchors:
            if not anchors:
                self.unanchored.add(wid)
                continue
            first = anchors[0]
            # A second requirement on another property (one property holds one value).
            names = {name for name, _ in first}
            second = next((a for a in anchors[1:] if not names & {n for n, _ in a}), None)
            if second is None:
                for value in first:
                    self.by_anchor.setdefault(value, set()).add(wid)
                continue
            for one in first:
                for other in second:
                    key = (one, other) if one < other else (other, one)
                    self.by_anchor_pair.setdefault(key, set()).add(wid)

    def may_match(self, properties: Mapping[str, PropertyValue]) -> set[str]:
        """Ids of the workflows whose criteria these properties can possibly meet."""
        possible = set(self.unanchored)
        values = sorted(
            (name, as_text(value)) for name, value in properties.items() if value is not None
        )
        by_anchor, by_pair = self.by_anchor, self.by_anchor_pair
        for position, value in enumerate(values):
            hits = by_anchor.get(value)
            if hits:
                possible |= hits
            if by_pair:
                for other in values[position + 1 :]:
                    hits = by_pair.get((value, other))
                    if hits:
                        possible |= hits
        return possible


@dataclass(slots=True)
class WorkflowIndex:
    """An immutable snapshot: rebuilt (cheaply, from cached compilations) on every change."""

    accounts: dict[str, AccountWorkflows] = field(default_factory=dict)
    version: int = 0

    @classmethod
    def build(
        cls,
        workflows: Iterable[CompiledWorkflow],
        time_zones: Mapping[str, str] | None = None,
        version: int = 0,
        regions: Mapping[str, str] | None = None,
    ) -> WorkflowIndex:
        index = cls(version=version)
        for account_id, zone in (time_zones or {}).items():
            index.accounts[account_id] = AccountWorkflows(time_zone=zone)
        for account_id, region in (regions or {}).items():
            index.accounts.setdefault(account_id, AccountWorkflows()).default_region = region
        for workflow in workflows:
            index.accounts.setdefault(workflow.account_id, AccountWorkflows()).add(workflow)
        return index

    def workflow(self, account_id: str, workflow_id: str) -> CompiledWorkflow | None:
        account = self.accounts.get(account_id)
        return None if account is None else account.workflows.get(workflow_id)

    def workflows_of(self, account_id: str) -> list[CompiledWorkflow]:
        account = self.accounts.get(account_id)
        return [] if account is None else list(account.workflows.values())

    def time_zone(self, account_id: str) -> str:
        account = self.accounts.get(account_id)
        return "UTC" if account is None else account.time_zone

    def default_region(self, account_id: str) -> str:
        account = self.accounts.get(account_id)
        return "US" if account is None else account.default_region

    def candidates(
        self,
        account_id: str,
        changed: Iterable[str],
        created: bool = False,
        after: Mapping[str, PropertyValue] | None = None,
        enrolled: Collection[str] = (),
    ) -> list[CompiledWorkflow]:
        """Workflows whose verdict the change may alter, each once, in a stable order.

        With ``after`` (the contact's properties after the change), workflows that cannot
        match them are left out unless the contact is enrolled in them: a contact that does
        not match afterwards can be neither enrolled nor refused, only unenrolled.
        """
        account = self.accounts.get(account_id)
        if account is None:
            return []
        by_property = account.by_property
        hits = [found for name in changed if (found := by_property.get(name))]
        if created and account.blank_matchers:
            hits.append(account.blank_matchers)
        if not hits:
            return []
        # Set algebra runs in C: with hundreds of workflows per property, filtering each
        # property's set by what can match first keeps the work proportional to the result.
        ids: set[str] = set()
        if after is None:
            ids.update(*hits)
        else:
            keep = account.may_match(after)
            keep.update(enrolled)
            for found in hits:
                ids |= found & keep
        workflows = account.workflows
        return [workflows[wid] for wid in sorted(ids)]


def is_contact_workflow(workflow: Workflow) -> bool:
    return workflow.spec.object_type is ObjectType.CONTACT
