"""Compiled workflows, indexed by the properties that can change their verdict.

Pure. A contact change re-evaluates only the workflows whose criteria, suppression or
re-enrollment triggers mention a changed property; a change touching none of them costs a
few set look-ups. A brand-new contact also meets the workflows with a group that matches
blank values (``is_unknown``, ``neq`` ...), since nothing it sets is needed for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.definitions import Action, ObjectType, Workflow

from .criteria import CompiledCriteria, compile_criteria


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
    actions: tuple[Action, ...]

    @property
    def properties(self) -> frozenset[str]:
        return self.criteria.properties | self.suppression.properties | self.reenroll_on

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
        actions=tuple(spec.actions),
    )


@dataclass(slots=True)
class AccountWorkflows:
    time_zone: str = "UTC"
    workflows: dict[str, CompiledWorkflow] = field(default_factory=dict)
    by_property: dict[str, list[CompiledWorkflow]] = field(default_factory=dict)
    blank_matchers: list[CompiledWorkflow] = field(default_factory=list)

    def add(self, workflow: CompiledWorkflow) -> None:
        self.workflows[workflow.workflow_id] = workflow
        for name in workflow.properties:
            self.by_property.setdefault(name, []).append(workflow)
        if workflow.criteria.matches_blank:
            self.blank_matchers.append(workflow)


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
    ) -> WorkflowIndex:
        index = cls(version=version)
        for account_id, zone in (time_zones or {}).items():
            index.accounts[account_id] = AccountWorkflows(time_zone=zone)
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

    def candidates(
        self, account_id: str, changed: Iterable[str], created: bool = False
    ) -> list[CompiledWorkflow]:
        """Workflows whose verdict the change may alter, each once, in a stable order."""
        account = self.accounts.get(account_id)
        if account is None:
            return []
        seen: dict[str, CompiledWorkflow] = {}
        by_property = account.by_property
        for name in changed:
            hits = by_property.get(name)
            if hits:
                for workflow in hits:
                    seen.setdefault(workflow.workflow_id, workflow)
        if created:
            for workflow in account.blank_matchers:
                seen.setdefault(workflow.workflow_id, workflow)
        return list(seen.values())


def is_contact_workflow(workflow: Workflow) -> bool:
    return workflow.spec.object_type is ObjectType.CONTACT
