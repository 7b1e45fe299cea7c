"""Account, SmsMessage and Workflow documents (``smsflow apply``) and the event carrying them."""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class ManageSubscription(Strict):
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


class SetMarketingContactStatus(Strict):
    type: Literal["set_marketing_contact_status"] = "set_marketing_contact_status"
    marketing: bool


class Delay(Strict):
    type: Literal["delay"] = "delay"
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    seconds: int = Field(default=0, ge=0)
    # Wait until the date/time held by this contact property (skipped when it is in the past).
    until_property: str | None = None

    @model_validator(mode="after")
    def _has_duration(self) -> Delay:
        if self.until_property is None and not (
            self.days or self.hours or self.minutes or self.seconds
        ):
            raise ValueError("delay needs days, hours, minutes, seconds or until_property")
        return self

    @property
    def total_seconds(self) -> int:
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60 + self.seconds


class SendSms(Strict):
    type: Literal["send_sms"] = "send_sms"
    message: Id


Action = Annotated[
    ManageSubscription | SetMarketingContactStatus | Delay | SendSms,
    Field(discriminator="type"),
]


class ObjectType(StrEnum):
    CONTACT = "contact"
    COMPANY = "company"
    DEAL = "deal"
    TICKET = "ticket"


class WorkflowSpec(Strict):
    object_type: ObjectType = ObjectType.CONTACT
    enabled: bool = False
    enrollment: EnrollmentSpec = Field(default_factory=EnrollmentSpec)
    suppression: Criteria = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _contact_only_actions(self) -> WorkflowSpec:
        if self.object_type is not ObjectType.CONTACT:
            for index, action in enumerate(self.actions):
                if isinstance(action, ManageSubscription):
                    raise ValueError(
                        f"actions[{index}]: manage_subscription is only allowed in contact "
                        f"workflows (object_type is {self.object_type.value})"
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
