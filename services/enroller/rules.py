"""HubSpot's enrollment rules as pure functions returning a ``Verdict``.

* Enroll when the criteria of an enabled workflow *become* true (not matching before the
  change, matching after); a contact that does not exist yet matches nothing before.
* One active enrollment per contact and workflow; a transition while enrolled is refused.
* By default a contact is enrolled once. With ``reenroll_on``, a later transition enrolls
  again only when one of those properties is among the changed ones.
* Suppression criteria block enrollment; a suppressed enrolled contact is unenrolled
  before its next action. Leaving suppression does not enroll.
* ``unenroll_when_criteria_unmet`` unenrolls when the criteria stop matching.
* A contact that meets the workflow's goal leaves it at once (``goal_met``), on the change
  that makes it meet the goal or before its next action, whichever comes first.
* A disabled workflow enrolls nobody (in-flight enrollments are handled by the dispatcher).
* ``enroll_existing`` enrolls, when a workflow is turned on, contacts that already match
  and were never enrolled in it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from schemas.contacts import PropertyValue

from .index import CompiledWorkflow

Properties = Mapping[str, PropertyValue]


class Kind(StrEnum):
    ENROLL = "enrolled"
    REENROLL = "reenrolled"
    NOT_ENROLLED = "not_enrolled"
    UNENROLL = "unenrolled"


class Reason(StrEnum):
    CRITERIA_MET = "criteria_met"
    ENROLL_EXISTING = "enroll_existing"
    REENROLL_TRIGGER = "reenroll_trigger"
    ALREADY_ENROLLED = "already_enrolled"
    ENROLLED_BEFORE = "reenrollment_off"  # enrolled once already, no re-enrollment trigger set
    NO_TRIGGER_CHANGED = "reenroll_property_unchanged"
    SUPPRESSED = "suppressed"
    WORKFLOW_DISABLED = "workflow_disabled"
    CRITERIA_UNMET = "criteria_unmet"
    CONTACT_DELETED = "contact_deleted"
    WORKFLOW_DELETED = "workflow_deleted"
    GOAL_MET = "goal_met"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    reason: Reason
    detail: str | None = None  # e.g. the re-enrollment property that changed

    @property
    def enrolls(self) -> bool:
        return self.kind in (Kind.ENROLL, Kind.REENROLL)


def on_change(
    workflow: CompiledWorkflow,
    before: Properties | None,
    after: Properties,
    changed: Collection[str],
    *,
    enrolled: bool,
    times_enrolled: int,
) -> Verdict | None:
    """The verdict for one workflow after one contact change; ``None``: nothing to record.

    ``before`` is ``None`` when the contact did not exist before this change.
    """
    if enrolled:
        if workflow.goal_met(after):
            return Verdict(Kind.UNENROLL, Reason.GOAL_MET)
        if workflow.suppressed(after):
            return Verdict(Kind.UNENROLL, Reason.SUPPRESSED)
        if workflow.unenroll_when_criteria_unmet and not workflow.matches(after):
            return Verdict(Kind.UNENROLL, Reason.CRITERIA_UNMET)
        if _became_true(workflow, before, after):
            return Verdict(Kind.NOT_ENROLLED, Reason.ALREADY_ENROLLED)
        return None
    if not _became_true(workflow, before, after):
        return None
    if not workflow.enabled:
        return Verdict(Kind.NOT_ENROLLED, Reason.WORKFLOW_DISABLED)
    if workflow.suppressed(after):
        return Verdict(Kind.NOT_ENROLLED, Reason.SUPPRESSED)
    if times_enrolled == 0:
        return Verdict(Kind.ENROLL, Reason.CRITERIA_MET)
    if not workflow.reenroll_on:
        return Verdict(Kind.NOT_ENROLLED, Reason.ENROLLED_BEFORE)
    trigger = next((name for name in sorted(workflow.reenroll_on) if name in changed), None)
    if trigger is None:
        return Verdict(Kind.NOT_ENROLLED, Reason.NO_TRIGGER_CHANGED)
    return Verdict(Kind.REENROLL, Reason.REENROLL_TRIGGER, trigger)


def on_turned_on(
    workflow: CompiledWorkflow, properties: Properties, *, enrolled: bool, times_enrolled: int
) -> Verdict | None:
    """``enroll_existing``: a contact that already matches when the workflow is turned on."""
    if not (workflow.enabled and workflow.enroll_existing) or enrolled or times_enrolled:
        return None
    if not workflow.matches(properties):
        return None
    if workflow.suppressed(properties):
        return Verdict(Kind.NOT_ENROLLED, Reason.SUPPRESSED)
    return Verdict(Kind.ENROLL, Reason.ENROLL_EXISTING)


def before_step(workflow: CompiledWorkflow | None, properties: Properties) -> Verdict | None:
    """Checked before every action is dispatched: an enrollment may have to end first."""
    if workflow is None:
        return Verdict(Kind.UNENROLL, Reason.WORKFLOW_DELETED)
    if workflow.goal_met(properties):
        return Verdict(Kind.UNENROLL, Reason.GOAL_MET)
    if workflow.suppressed(properties):
        return Verdict(Kind.UNENROLL, Reason.SUPPRESSED)
    return None


def _became_true(workflow: CompiledWorkflow, before: Properties | None, after: Properties) -> bool:
    # Evaluate "after" first: most changes leave a contact not matching, and then "before"
    # need not be read at all.
    return workflow.matches(after) and (before is None or not workflow.matches(before))
