"""Applying one record to one contact: the enroller's decisions, without any I/O.

``ContactEngine`` takes a contact's state, the workflow index and ``now``; its entry points
(a contact change, an action result, due timers, a workflow turned on, a restart) mutate
that state and collect ``Effects``. The record handler and the timer only decode, call,
write and produce.

Ordered dispatch: an enrollment has at most one action out at a time. Step k+1 is sent
only once the result of step k is in, after the property write the result carries has been
applied (and evaluated) like any contact change, so the next command sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas.actions import ActionCommand, ActionOutcome, ActionResult
from schemas.contacts import ContactChange, PropertyValue
from schemas.definitions import (
    Branch,
    Delay,
    ManageSubscription,
    SendSms,
    SetMarketingContactStatus,
)
from schemas.enrollment import (
    EnrollmentDecision,
    EnrollmentEvent,
    action_id,
    enrollment_id,
    step_of,
)
from schemas.sms import DEFERRED_SENDING_WINDOW, SmsStatus, SmsStatusEvent
from services.common.errors import PermanentError
from services.common.idempotency import sms_key
from services.common.masking import mask_phone
from services.common.phones import parse_number, raw_recipient

from . import rules
from .delays import delay_end
from .effects import Effects, derived_id
from .index import CompiledWorkflow, WorkflowIndex
from .local_time import NoCommonWindow, window_opening, zones_of
from .plan import Step
from .recency import FUTURE_TOLERANCE_S, stamp_of, wins
from .rules import Kind, Reason, Verdict
from .state import ContactState, Enrollment, Status, split_key

DEFAULT_DEDUPE_WINDOW = 24
DEFERRED_WITHOUT_TIME_S = 300.0  # a deferral that names no retry time is retried this late
# Actions that write consent or marketing status: never run for a workflow that is off.
PROPERTY_WRITES = (ManageSubscription, SetMarketingContactStatus)


class InvalidRecord(PermanentError):
    """A record that can never be applied (it belongs to another contact ...): dead-letter it."""


class ContactEngine:
    def __init__(
        self,
        index: WorkflowIndex,
        key: str,
        state: ContactState | None,
        now: float,
        dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
    ) -> None:
        try:
            self.account_id, self.contact_id = split_key(key)
        except ValueError as exc:
            raise InvalidRecord(str(exc)) from exc
        self.index = index
        self.key = key
        self.state = state if state is not None else ContactState()
        self.now = now
        self.moment = datetime.fromtimestamp(now, UTC)
        self.dedupe_window = dedupe_window
        self.effects = Effects()

    # ------------------------------------------------------------ entry points

    def apply_change(self, change: ContactChange) -> None:
        """A contact change; each property it lists is applied only when the change is newer
        than the property's last write (``recency``), so a replayed or late change never
        regresses a value, and what it does not change enrolls no one."""
        if (change.account_id, change.contact_id) != (self.account_id, self.contact_id):
            raise InvalidRecord(
                f"change for {change.account_id}:{change.contact_id} under key {self.key}"
            )
        stamp = stamp_of(change.occurred_at)
        if self._too_new(stamp):
            raise InvalidRecord(f"occurred_at {change.occurred_at.isoformat()} is in the future")
        state = self.state
        existed = not state.deleted and bool(state.seen)
        if not state.remember(change.event_id, self.dedupe_window):
            self.effects.note("change_duplicate", change=change.event_id)
            return
        self.effects.dirty = True
        cause = change.event_id
        # A deletion ends whatever happened before it; a change older than the latest write
        # cannot delete it, and a change not newer than a deletion cannot bring it back.
        if stamp < (state.newest() if change.deleted else state.floor + 1):
            self.effects.note("change_stale", change=change.event_id)
            return
        if change.deleted:
            for workflow_id in list(state.enrollments):
                workflow = self.index.workflow(self.account_id, workflow_id)
                self._end(
                    workflow_id, workflow, Verdict(Kind.UNENROLL, Reason.CONTACT_DELETED), cause
                )
            state.properties, state.stamps, state.floor = {}, {}, stamp
            state.deleted = True
            return
        if not existed:
            state.deleted = False
            state.properties, state.stamps = {}, {}
        properties, stamps = state.properties, state.stamps
        old: dict[str, PropertyValue] = {}
        stale: list[str] = []
        for name, value in change.properties.items():
            previous = properties.get(name)
            if not wins(stamp, value, stamps.get(name), previous):
                stale.append(name)
                continue
            stamps[name] = stamp
            if value is None:
                properties.pop(name, None)
            else:
                properties[name] = value
            if previous != value and name not in old:
                old[name] = previous
        if stale:
            self.effects.note("properties_stale", change=change.event_id, properties=stale)
        candidates = self.index.candidates(
            self.account_id,
            old,
            created=not existed,
            after=properties,
            enrolled=state.enrolled_in(),
        )
        if not candidates:
            return
        before: dict[str, PropertyValue] | None = None
        if existed:
            before = dict(properties)
            for name, value in old.items():
                if value is None:
                    before.pop(name, None)
                else:
                    before[name] = value
        for workflow in candidates:
            wid = workflow.workflow_id
            verdict = rules.on_change(
                workflow,
                before,
                properties,
                old,
                enrolled=wid in state.enrollments,
                times_enrolled=state.sequences.get(wid, 0),
            )
            if verdict is not None:
                self._apply(workflow, verdict, cause)

    def _too_new(self, stamp: int) -> bool:
        return stamp > (self.now + FUTURE_TOLERANCE_S) * 1_000_000

    def apply_result(self, result: ActionResult) -> None:
        self._check_result(result)
        if result.branch is not None:  # the enroller's own record of a branch it took
            self.effects.note("branch_recorded", action=result.action_id)
            return
        change = result.contact_change
        if change is not None and self._too_new(stamp_of(change.occurred_at)):
            # A runner clock far ahead: keep the enrollment going without the write.
            self.effects.note("property_write_refused", change=change.event_id, why="future")
        elif change is not None:
            self.apply_change(change)
        enrollment = self.state.enrollments.get(result.workflow_id)
        workflow = self.index.workflow(self.account_id, result.workflow_id)
        if (
            enrollment is None
            or enrollment.status is not Status.AWAITING
            or self._enrollment_id(result.workflow_id, enrollment) != result.enrollment_id
            or not self._is_current(workflow, enrollment, result)
        ):
            self.effects.note("result_ignored", action=result.action_id, reason="not_pending")
            return
        self.effects.dirty = True
        cause = result.event_id
        if result.outcome is ActionOutcome.DEFERRED:
            retry_at = result.retry_at.timestamp() if result.retry_at else None
            enrollment.status = Status.DEFERRED
            enrollment.due = (
                retry_at if retry_at is not None else self.now + DEFERRED_WITHOUT_TIME_S
            )
            self.effects.note("action_deferred", action=result.action_id, due=enrollment.due)
            return
        if result.outcome is ActionOutcome.FAILED:
            # HubSpot logs an action error and moves the enrollment on to the next action.
            self.effects.note("action_failed", action=result.action_id, reason=result.reason)
        self._finish_step(result.workflow_id, workflow, enrollment, cause)

    def fire_due(self) -> None:
        """Ends the delays and deferrals whose time has come."""
        for workflow_id, enrollment in list(self.state.enrollments.items()):
            if enrollment.due is None or enrollment.due > self.now:
                continue
            self.effects.dirty = True
            workflow = self.index.workflow(self.account_id, workflow_id)
            self._locate(workflow, enrollment)
            cause = f"timer:{enrollment.sequence}:{enrollment.step}:{enrollment.attempt}"
            enrollment.due = None
            if enrollment.status is Status.DELAYED:
                self._finish_step(workflow_id, workflow, enrollment, cause)
            elif workflow is not None and workflow.plan.step(str(enrollment.step)) is not None:
                # DEFERRED: the same action again, with a fresh contact snapshot
                self._advance(
                    workflow_id,
                    workflow,
                    enrollment,
                    str(enrollment.step),
                    cause,
                    enrollment.attempt + 1,
                )
            else:  # DEFERRED at an action a revision removed: it is not run
                self._advance(
                    workflow_id, workflow, enrollment, self._after(workflow, enrollment), cause
                )

    def enroll_existing(self, workflow: CompiledWorkflow) -> None:
        state = self.state
        if state.deleted or not state.seen:
            return
        wid = workflow.workflow_id
        verdict = rules.on_turned_on(
            workflow,
            state.properties,
            enrolled=wid in state.enrollments,
            times_enrolled=state.sequences.get(wid, 0),
        )
        if verdict is not None:
            self._apply(workflow, verdict, f"existing:{workflow.revision}")

    def resend_pending(self) -> None:
        """After a restart or rebalance: re-send every command still waiting for its result.

        The command may have been lost with the process that wrote the state; the copy has
        the same ``action_id`` and ``event_id``, and a second result is ignored as stale.
        An action that a revision removed meanwhile is not re-sent: the enrollment carries
        on as if it had been skipped (a copy that did arrive still runs, once).
        """
        for workflow_id, enrollment in list(self.state.enrollments.items()):
            if enrollment.status is not Status.AWAITING:
                continue
            workflow = self.index.workflow(self.account_id, workflow_id)
            if workflow is None:
                continue  # the next timer, result or change ends it
            self._locate(workflow, enrollment)
            if workflow.plan.step(str(enrollment.step)) is not None:
                self.effects.commands.append(self._command(workflow, enrollment))
                continue
            self.effects.dirty = True
            cause = f"removed:{enrollment.sequence}:{enrollment.step}:{workflow.revision}"
            self._advance(
                workflow_id, workflow, enrollment, self._after(workflow, enrollment), cause
            )

    # ------------------------------------------------------------ decisions

    def _apply(self, workflow: CompiledWorkflow, verdict: Verdict, cause: str) -> None:
        wid = workflow.workflow_id
        if verdict.enrolls:
            sequence = self.state.sequences.get(wid, 0) + 1
            self.state.sequences[wid] = sequence
            enrollment = Enrollment(sequence=sequence, step="", status=Status.AWAITING)
            self.state.enrollments[wid] = enrollment
            self.effects.dirty = True
            decision = (
                EnrollmentDecision.ENROLLED
                if verdict.kind is Kind.ENROLL
                else EnrollmentDecision.REENROLLED
            )
            self._event(workflow, decision, verdict, cause, enrollment)
            self._advance(wid, workflow, enrollment, workflow.plan.first, cause)
        elif verdict.kind is Kind.UNENROLL:
            self._end(wid, workflow, verdict, cause)
        else:
            self._event(workflow, EnrollmentDecision.NOT_ENROLLED, verdict, cause, None)

    def _advance(
        self,
        workflow_id: str,
        workflow: CompiledWorkflow | None,
        enrollment: Enrollment,
        step_id: str | None,
        cause: str,
        attempt: int = 1,
    ) -> None:
        """Run the enrollment from ``step_id`` until an action is out, a delay waits, or it
        ends. An action this enrollment already finished is passed over (see ``plan``)."""
        properties = self.state.properties
        while True:
            stop = rules.before_step(workflow, properties)
            if stop is not None:
                self._end(workflow_id, workflow, stop, cause)
                return
            assert workflow is not None
            step = None if step_id is None else workflow.plan.step(step_id)
            if step is None:
                self._complete(workflow, enrollment, cause)
                return
            if step.id in enrollment.done:
                step_id, attempt = step.next, 1
                continue
            action = step.action
            enrollment.step, enrollment.attempt, enrollment.due = step.id, attempt, None
            after = step.next
            if isinstance(action, Branch):
                # On the contact as it is now, property writes of earlier actions included.
                way = step.choose(properties)
                self._branched(workflow, enrollment, step, way.name, cause)
                after = way.first
            elif isinstance(action, Delay):
                zones = self._zones() if action.until is not None else ()
                end = delay_end(action, properties, self._time_zone, self.now, zones)
                if end.due is not None:
                    enrollment.status, enrollment.due = Status.DELAYED, end.due
                    return
                self.effects.note("delay_skipped", workflow=workflow_id, step=step.id, why=end.note)
            elif isinstance(action, PROPERTY_WRITES) and not workflow.enabled:
                self.effects.note(
                    "action_skipped", workflow=workflow_id, step=step.id, reason="workflow_disabled"
                )
            else:
                opens = self._window_opens(workflow)
                if opens is not None:  # outside the sending window: wait for it, durably
                    enrollment.status, enrollment.due = Status.DEFERRED, opens
                    self._held_by_window(workflow, enrollment, step, opens)
                    return
                enrollment.status = Status.AWAITING
                self.effects.commands.append(self._command(workflow, enrollment))
                return
            enrollment.done.append(step.id)
            step_id, attempt = after, 1

    # ------------------------------------------------------------ recipient time

    @property
    def _time_zone(self) -> str:
        return self.index.time_zone(self.account_id)

    def _zones(self) -> tuple[ZoneInfo, ...]:
        """The recipient's possible zones, by the quiet-hours rules (see ``local_time``)."""
        region = self.index.default_region(self.account_id)
        return zones_of(self.state.properties, region, self._time_zone)

    def _window_opens(self, workflow: CompiledWorkflow) -> float | None:
        """None inside the workflow's sending window (or without one); else when it opens."""
        window = workflow.window
        if window is None:
            return None
        try:
            opens = window_opening(self.moment, self._zones(), window)
        except NoCommonWindow:  # zones a day apart: the account's zone decides
            opens = window_opening(self.moment, (ZoneInfo(self._time_zone),), window)
        return None if opens is None else opens.timestamp()

    def _finish_step(
        self,
        workflow_id: str,
        workflow: CompiledWorkflow | None,
        enrollment: Enrollment,
        cause: str,
    ) -> None:
        """The current action is over (its result is in, its delay ended): go on after it."""
        if enrollment.step not in enrollment.done:
            enrollment.done.append(str(enrollment.step))
        self._advance(workflow_id, workflow, enrollment, self._after(workflow, enrollment), cause)

    @staticmethod
    def _after(workflow: CompiledWorkflow | None, enrollment: Enrollment) -> str | None:
        return None if workflow is None else workflow.plan.after(enrollment.done)

    @staticmethod
    def _locate(workflow: CompiledWorkflow | None, enrollment: Enrollment) -> None:
        """A record written before actions had ids holds a position: read it against the
        current revision (the actions before it count as finished)."""
        if not isinstance(enrollment.step, int) or workflow is None:
            return
        order = workflow.plan.order
        position = enrollment.step
        enrollment.done = list(order[:position])
        enrollment.step = order[position] if position < len(order) else ""

    def _is_current(
        self, workflow: CompiledWorkflow | None, enrollment: Enrollment, result: ActionResult
    ) -> bool:
        """True when ``result`` is for the action the enrollment waits on."""
        step = step_of(result.action_id, result.enrollment_id)
        if isinstance(enrollment.step, int):  # a record and a result from before ids
            if step == str(enrollment.step):
                self._locate(workflow, enrollment)
                return True
            return False
        return step == enrollment.step

    def _complete(self, workflow: CompiledWorkflow, enrollment: Enrollment, cause: str) -> None:
        del self.state.enrollments[workflow.workflow_id]
        self.effects.dirty = True
        self._event(workflow, EnrollmentDecision.COMPLETED, None, cause, enrollment)

    def _end(
        self, workflow_id: str, workflow: CompiledWorkflow | None, verdict: Verdict, cause: str
    ) -> None:
        enrollment = self.state.enrollments.pop(workflow_id, None)
        if enrollment is None:
            return
        self.effects.dirty = True
        self._event(
            workflow,
            EnrollmentDecision.UNENROLLED,
            verdict,
            cause,
            enrollment,
            workflow_id=workflow_id,
        )

    # ------------------------------------------------------------ outputs

    def _enrollment_id(self, workflow_id: str, enrollment: Enrollment) -> str:
        return enrollment_id(self.account_id, workflow_id, self.contact_id, enrollment.sequence)

    def _command(self, workflow: CompiledWorkflow, enrollment: Enrollment) -> ActionCommand:
        enrollment_key = self._enrollment_id(workflow.workflow_id, enrollment)
        step = workflow.plan.steps[str(enrollment.step)]
        step_id = action_id(enrollment_key, step.id)
        # Built without re-validation: every field comes from validated definitions and state.
        return ActionCommand.model_construct(
            event_id=derived_id("command", step_id, enrollment.attempt),
            occurred_at=self.moment,
            action_id=step_id,
            account_id=self.account_id,
            contact_id=self.contact_id,
            workflow_id=workflow.workflow_id,
            workflow_revision=workflow.revision,
            enrollment_id=enrollment_key,
            step=step.position,
            attempt=enrollment.attempt,
            action=step.action,
            contact=dict(self.state.properties),
        )

    def _event(
        self,
        workflow: CompiledWorkflow | None,
        decision: EnrollmentDecision,
        verdict: Verdict | None,
        cause: str,
        enrollment: Enrollment | None,
        workflow_id: str | None = None,
        *,
        reason: str | None = None,
        action: str | None = None,
        branch: str | None = None,
    ) -> None:
        wid = workflow.workflow_id if workflow is not None else workflow_id
        assert wid is not None
        if verdict is not None:
            reason = verdict.reason.value
            if verdict.detail:
                reason = f"{reason}:{verdict.detail}"
        enrollment_key = None if enrollment is None else self._enrollment_id(wid, enrollment)
        parts = (self.key, wid, decision.value, cause) + (() if action is None else (action,))
        self.effects.events.append(
            EnrollmentEvent.model_construct(
                event_id=derived_id("enrollment", *parts),
                occurred_at=self.moment,
                account_id=self.account_id,
                contact_id=self.contact_id,
                workflow_id=wid,
                workflow_revision=workflow.revision if workflow is not None else 1,
                decision=decision,
                enrollment_id=enrollment_key,
                sequence=None if enrollment is None else enrollment.sequence,
                reason=reason,
                action_id=action,
                branch=branch,
            )
        )

    def _branched(
        self, workflow: CompiledWorkflow, enrollment: Enrollment, step: Step, way: str, cause: str
    ) -> None:
        """A branch chose ``way``: said on enrollment-events and, like every action's
        outcome, on action-results (the enroller ignores its own record when it reads it)."""
        enrollment_key = self._enrollment_id(workflow.workflow_id, enrollment)
        key = action_id(enrollment_key, step.id)
        reason = f"branch:{way}"
        self._event(
            workflow,
            EnrollmentDecision.BRANCHED,
            None,
            cause,
            enrollment,
            reason=reason,
            action=key,
            branch=way,
        )
        self.effects.results.append(
            ActionResult.model_construct(
                event_id=derived_id("branch", key),
                occurred_at=self.moment,
                action_id=key,
                account_id=self.account_id,
                contact_id=self.contact_id,
                workflow_id=workflow.workflow_id,
                enrollment_id=enrollment_key,
                step=step.position,
                outcome=ActionOutcome.DONE,
                reason=reason,
                branch=way,
            )
        )

    def _held_by_window(
        self, workflow: CompiledWorkflow, enrollment: Enrollment, step: Step, opens: float
    ) -> None:
        """An action waits for the sending window; an SMS says so on sms-status."""
        enrollment_key = self._enrollment_id(workflow.workflow_id, enrollment)
        key = action_id(enrollment_key, step.id)
        self.effects.note("window_deferred", action=key, due=opens)
        action = step.action
        if not isinstance(action, SendSms):
            return
        region = self.index.default_region(self.account_id)
        raw = raw_recipient(self.state.properties)
        number = parse_number(raw, region)[0] if raw is not None else None
        self.effects.statuses.append(
            SmsStatusEvent.model_construct(
                event_id=derived_id("window", key, enrollment.attempt),
                occurred_at=self.moment,
                idempotency_key=sms_key(
                    self.account_id, workflow.workflow_id, enrollment_key, step.id
                ),
                account_id=self.account_id,
                contact_id=self.contact_id,
                workflow_id=workflow.workflow_id,
                enrollment_id=enrollment_key,
                message_id=action.message,
                status=SmsStatus.DEFERRED,
                reason=DEFERRED_SENDING_WINDOW,
                to_masked=None if number is None else mask_phone(number),
                deferred_until=datetime.fromtimestamp(opens, UTC),
            )
        )

    def _check_result(self, result: ActionResult) -> None:
        if (result.account_id, result.contact_id) != (self.account_id, self.contact_id):
            raise InvalidRecord(
                f"result for {result.account_id}:{result.contact_id} under key {self.key}"
            )
        prefix = f"{self.account_id}/{result.workflow_id}/{self.contact_id}/"
        sequence = result.enrollment_id.removeprefix(prefix)
        if not result.enrollment_id.startswith(prefix) or not sequence.isdigit():
            raise InvalidRecord(
                f"enrollment_id {result.enrollment_id!r} is not an enrollment of "
                f"{self.key} in {result.workflow_id}"
            )
        if step_of(result.action_id, result.enrollment_id) is None:
            raise InvalidRecord(
                f"action_id {result.action_id!r} is not an action of {result.enrollment_id}"
            )
        change = result.contact_change
        if change is not None and (change.account_id, change.contact_id) != (
            self.account_id,
            self.contact_id,
        ):
            raise InvalidRecord("the result's contact_change is for another contact")
