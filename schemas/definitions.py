"""Account, SmsMessage and Workflow documents (``smsflow apply``) and the event carrying them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.envelope import E164, Event, Id
from schemas.subscriptions import LegalBasis


class Strict(BaseModel):
    # Definitions are written by people: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- Account


class QuietHours(Strict):
    """Recipient-local window in which nothing is sent; crosses midnight when end < start."""

    start: time
    end: time


class FrequencyCap(Strict):
    """At most ``max_messages`` SMS per contact in any rolling ``per_days`` (all workflows)."""

    max_messages: int = Field(ge=1)
    per_days: int = Field(ge=1)


class SubscriptionType(Strict):
    id: Id
    name: str


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


class SenderRate(Strict):
    """Limits of the account's sender number: a long code, a toll-free number and a short
    code each allow a different throughput. They hold across all sender replicas."""

    messages_per_s: float = Field(gt=0)
    segments_per_s: float | None = Field(default=None, gt=0)


class AccountSpec(Strict):
    sms_access: bool = False
    sender: E164
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    time_zone: str = "UTC"
    # HubSpot's default sending window is 08:00-19:59 recipient time; null disables quiet hours.
    quiet_hours: QuietHours | None = QuietHours(start=time(20, 0), end=time(8, 0))
    subscription_types: list[SubscriptionType] = Field(default_factory=list)
    opt_out_text: str | None = None
    # Added to the contract: the reply to HELP/INFO.
    help_text: str | None = None
    # A8: words added to the default keyword lists (e.g. Finnish LOPETA).
    opt_out_keywords: list[str] = Field(default_factory=list)
    opt_in_keywords: list[str] = Field(default_factory=list)
    help_keywords: list[str] = Field(default_factory=list)
    frequency_cap: FrequencyCap | None = None
    # Short tracking links render under this prefix.
    link_domain: str = "http://127.0.0.1:8026/r/"
    # The sender number's own rate limits (default: the sender's SMSFLOW_SENDER_*_PER_S).
    sender_rate: SenderRate | None = None

    _zone = field_validator("time_zone")(_check_zone)


# ---------------------------------------------------------------- SmsMessage


class Delivery(StrEnum):
    WORKFLOW = "workflow"  # "as part of a workflow"
    MANUAL = "manual"  # sent now or scheduled from the SMS tool


class MessageState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class SmsMessageSpec(Strict):
    name: str
    body: str = Field(min_length=1)
    subscription_type: Id
    delivery: Delivery = Delivery.WORKFLOW
    state: MessageState = MessageState.DRAFT


# ---------------------------------------------------------------- Workflow: criteria


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    IS_ANY_OF = "is_any_of"
    IS_NONE_OF = "is_none_of"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    IS_KNOWN = "is_known"
    IS_UNKNOWN = "is_unknown"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    BEFORE = "before"
    AFTER = "after"


LIST_OPERATORS = frozenset({Operator.IS_ANY_OF, Operator.IS_NONE_OF})
NO_VALUE_OPERATORS = frozenset({Operator.IS_KNOWN, Operator.IS_UNKNOWN})

Scalar = str | int | float | bool


class Filter(Strict):
    property: str = Field(min_length=1)
    operator: Operator
    value: Scalar | None = None
    values: list[Scalar] | None = None

    @model_validator(mode="after")
    def _operands_fit_operator(self) -> Filter:
        op = self.operator
        if op in NO_VALUE_OPERATORS:
            if self.value is not None or self.values:
                raise ValueError(f"operator {op.value} takes no value")
        elif op in LIST_OPERATORS:
            if not self.values:
                raise ValueError(f"operator {op.value} needs a non-empty 'values' list")
        elif op is Operator.BETWEEN:
            if self.values is None or len(self.values) != 2:
                raise ValueError("operator between needs 'values: [low, high]'")
        elif self.value is None:
            raise ValueError(f"operator {op.value} needs a 'value'")
        return self


AndGroup = list[Filter]
Criteria = list[AndGroup]  # OR of AND-groups, as HubSpot's filter tree


class EnrollmentSpec(Strict):
    criteria: Criteria = Field(default_factory=list)
    reenroll_on: list[str] = Field(default_factory=list)
    enroll_existing: bool = False
    unenroll_when_criteria_unmet: bool = False


# ---------------------------------------------------------------- Workflow: actions

# A8: an action's stable id, unique in its workflow; derived from its content when absent.
ActionId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]


class _Action(Strict):
    id: ActionId | None = None


class ManageSubscription(_Action):
    type: Literal["manage_subscription"] = "manage_subscription"
    channel: Literal["sms"] = "sms"
    subscription_type: Id
    status: Literal["subscribed", "unsubscribed"]
    legal_basis: LegalBasis | None = None
    legal_basis_explanation: str | None = None
    processing_legal_basis: LegalBasis | None = None

    @model_validator(mode="after")
    def _subscribing_needs_basis(self) -> ManageSubscription:
        if self.status == "subscribed":
            if self.legal_basis is None:
                raise ValueError("subscribing needs a legal_basis")
            if not (self.legal_basis_explanation or "").strip():
                raise ValueError("subscribing needs a legal_basis_explanation")
        return self


class SetMarketingContactStatus(_Action):
    type: Literal["set_marketing_contact_status"] = "set_marketing_contact_status"
    marketing: bool


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """Monday is 0, as ``date.weekday()``."""
        return list(Weekday).index(self)


class DelayUntil(Strict):
    """The next instant that is ``time`` (on ``weekday``, else on any day), recipient time."""

    weekday: Weekday | None = None
    time: time


class Delay(_Action):
    type: Literal["delay"] = "delay"
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    seconds: int = Field(default=0, ge=0)
    # Wait until the date/time held by this contact property (skipped when it is in the past).
    until_property: str | None = None
    # Wait until a day of the week and/or a time of day in the recipient's time zone.
    until: DelayUntil | None = None

    @model_validator(mode="after")
    def _has_duration(self) -> Delay:
        if self.until is not None:
            if self.until_property is not None or self.total_seconds:
                raise ValueError("a delay with 'until' takes no other duration")
            return self
        if self.until_property is None and not self.total_seconds:
            raise ValueError("delay needs days, hours, minutes, seconds, until or until_property")
        return self

    @property
    def total_seconds(self) -> int:
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60 + self.seconds


class SendSms(_Action):
    type: Literal["send_sms"] = "send_sms"
    message: Id


DEFAULT_BRANCH = "default"  # the name the default path is reported by
BranchName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


class BranchPath(Strict):
    """One way out of a ``branch``: taken when its criteria match (an OR of AND-groups)."""

    name: BranchName
    criteria: Criteria = Field(min_length=1)
    actions: list[Action] = Field(default_factory=list)


class Branch(_Action):
    """HubSpot's if/then branch: the first path whose criteria match the contact when the
    branch is reached, else ``default``; the workflow goes on after the branch."""

    type: Literal["branch"] = "branch"
    branches: list[BranchPath] = Field(min_length=1)
    default: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Branch:
        names = [path.name for path in self.branches]
        if DEFAULT_BRANCH in names:
            raise ValueError(f"branch name {DEFAULT_BRANCH!r} is reserved for the default path")
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated is not None:
            raise ValueError(f"branch name {repeated!r} is used twice in one branch")
        return self


Action = Annotated[
    ManageSubscription | SetMarketingContactStatus | Delay | SendSms | Branch,
    Field(discriminator="type"),
]
BranchPath.model_rebuild()
Branch.model_rebuild()


def walk_actions(actions: Sequence[Action]) -> Iterator[Action]:
    """Every action of a list, nested ones included, in the order they are written."""
    for _, action in action_paths(actions):
        yield action


def action_paths(
    actions: Sequence[Action], path: tuple[str | int, ...] = ("actions",)
) -> Iterator[tuple[tuple[str | int, ...], Action]]:
    """``(path, action)`` for every action, nested ones included, in the order they are
    written; a path reads like ``("actions", 0, "branches", 1, "actions", 2)``."""
    for index, action in enumerate(actions):
        here = (*path, index)
        yield here, action
        if isinstance(action, Branch):
            for number, branch in enumerate(action.branches):
                yield from action_paths(branch.actions, (*here, "branches", number, "actions"))
            yield from action_paths(action.default, (*here, "default"))


def action_ids(actions: Sequence[Action]) -> list[str]:
    """The stable id of every action of ``walk_actions(actions)``, in that order.

    An ``id`` written by the author is kept. Otherwise the id is the action's type and a
    digest of its content (``send-sms-1a2b3c4d``), never its position, so inserting or
    removing other actions leaves it alone; identical actions get ``-2``, ``-3`` in the
    order they are written, and a derived id never takes one an author wrote.
    """
    walked = list(walk_actions(actions))
    taken = {action.id for action in walked if action.id is not None}
    repeats: dict[str, int] = {}
    ids: list[str] = []
    for action in walked:
        if action.id is not None:
            ids.append(action.id)
            continue
        base = derived_action_id(action)
        candidate = base
        while candidate in taken:
            repeats[base] = repeats.get(base, 1) + 1
            candidate = f"{base}-{repeats[base]}"
        taken.add(candidate)
        ids.append(candidate)
    return ids


def derived_action_id(action: Action) -> str:
    """``{type}-{8 hex digits of the content}``; fields left at their defaults do not count,
    so a field added to the model later does not change the ids of existing workflows."""
    content = action.model_dump(mode="json", exclude={"id"}, exclude_defaults=True)
    if isinstance(action, Branch):  # its own decision only: nested actions have their ids
        content = {"branches": [[b.get("name"), b.get("criteria")] for b in content["branches"]]}
    text = json.dumps([action.type, content], sort_keys=True, separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
    return f"{action.type.replace('_', '-')}-{digest}"


def duplicate_action_ids(actions: Sequence[Action]) -> list[str]:
    """Ids written more than once in one workflow, in the order they first repeat."""
    seen: set[str] = set()
    repeated: list[str] = []
    for action in walk_actions(actions):
        if action.id is None:
            continue
        if action.id in seen and action.id not in repeated:
            repeated.append(action.id)
        seen.add(action.id)
    return repeated


class ObjectType(StrEnum):
    CONTACT = "contact"
    COMPANY = "company"
    DEAL = "deal"
    TICKET = "ticket"


class Goal(Strict):
    """A contact meeting these criteria leaves the workflow at once (reason ``goal_met``)."""

    criteria: Criteria = Field(min_length=1)


class SendingWindow(Strict):
    """Actions run only on ``days`` between ``start`` and ``end``, recipient local time;
    outside it they wait (SMS status ``deferred``, reason ``sending_window``)."""

    days: list[Weekday] = Field(default_factory=lambda: list(Weekday), min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _start_before_end(self) -> SendingWindow:
        if self.start >= self.end:
            raise ValueError("a sending window's start must be before its end (same day)")
        return self


class WorkflowSpec(Strict):
    object_type: ObjectType = ObjectType.CONTACT
    enabled: bool = False
    enrollment: EnrollmentSpec = Field(default_factory=EnrollmentSpec)
    suppression: Criteria = Field(default_factory=list)
    goal: Goal | None = None
    sending_window: SendingWindow | None = None
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _contact_workflows_only(self) -> WorkflowSpec:
        if self.object_type is not ObjectType.CONTACT:
            raise ValueError(
                f"object_type {self.object_type.value} is not supported: only contact "
                "workflows enroll anyone until associations are modelled"
            )
        return self

    @model_validator(mode="after")
    def _unique_action_ids(self) -> WorkflowSpec:
        repeated = duplicate_action_ids(self.actions)
        if repeated:
            raise ValueError(
                f"action id {repeated[0]!r} is used by more than one action of this workflow"
            )
        return self


# ---------------------------------------------------------------- documents


class Metadata(Strict):
    id: Id
    account: Id | None = None


class _Document(Strict):
    api_version: Literal["smsflow/v1"] = Field(alias="apiVersion")
    metadata: Metadata

    @property
    def account_id(self) -> str:
        return self.metadata.account or self.metadata.id

    @property
    def key(self) -> str:
        """The compacted ``definitions`` topic key: ``{kind}:{account_id}:{id}``."""
        kind: str = getattr(self, "kind")  # noqa: B009 - declared by each subclass
        return f"{kind}:{self.account_id}:{self.metadata.id}"


class Account(_Document):
    kind: Literal["Account"] = "Account"
    spec: AccountSpec

    @model_validator(mode="after")
    def _own_account(self) -> Account:
        if self.metadata.account not in (None, self.metadata.id):
            raise ValueError("an Account's metadata.account must be empty or equal metadata.id")
        return self


class _AccountScoped(_Document):
    @field_validator("metadata")
    @classmethod
    def _needs_account(cls, metadata: Metadata) -> Metadata:
        if metadata.account is None:
            raise ValueError("metadata.account is required")
        return metadata


class SmsMessage(_AccountScoped):
    kind: Literal["SmsMessage"] = "SmsMessage"
    spec: SmsMessageSpec


class Workflow(_AccountScoped):
    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec


Document = Annotated[Account | SmsMessage | Workflow, Field(discriminator="kind")]

_SPLIT = re.compile(r":")


def definition_key(kind: str, account_id: str, object_id: str) -> str:
    return f"{kind}:{account_id}:{object_id}"


def parse_definition_key(key: str) -> tuple[str, str, str]:
    kind, account_id, object_id = _SPLIT.split(key, maxsplit=2)
    return kind, account_id, object_id


class DefinitionApplied(Event):
    """A document as applied; the topic is compacted, so the latest revision per key remains."""

    event_type: Literal["definition.applied"] = "definition.applied"
    document: Document
    revision: int = Field(default=1, ge=1)
    content_hash: str = ""

    @property
    def key(self) -> str:
        return self.document.key


def document_dump(document: Account | SmsMessage | Workflow) -> dict[str, Any]:
    """The document as a user would write it (aliases, no derived fields)."""
    return document.model_dump(mode="json", by_alias=True)
