"""The one home of topic names, keys, partitioning and retention."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from schemas.actions import ActionCommand, ActionResult
from schemas.contacts import ContactChange
from schemas.dead_letters import DeadLetter
from schemas.definitions import DefinitionApplied
from schemas.enrollment import EnrollmentEvent
from schemas.ledger import SmsLedgerEntry
from schemas.sms import (
    InboundSms,
    NumberOptOut,
    ProviderOptOut,
    SmsLinkClicked,
    SmsRequest,
    SmsStatusEvent,
)
from schemas.subscriptions import SubscriptionChange

DEFAULT_PREFIX = "smsflow."
DEFAULT_PARTITIONS = 6
WEEK_MS = 7 * 24 * 3600 * 1000


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"
    # Compacted and also deleted after ``retention_ms`` (keeps the latest value per key,
    # for a bounded time).
    COMPACT_DELETE = "compact,delete"


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without prefix
    key_format: str
    values: tuple[type[BaseModel], ...]
    cleanup: Cleanup = Cleanup.DELETE
    retention_ms: int = WEEK_MS  # -1 keeps forever
    # None: the shared contact partition count, so co-partitioned topics line up.
    partitions: int | None = None

    def full_name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}{self.name}"

    def partition_count(self, default: int = DEFAULT_PARTITIONS) -> int:
        return self.partitions if self.partitions is not None else default

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup.value}
        if self.cleanup is not Cleanup.COMPACT:
            config["retention.ms"] = str(self.retention_ms)
        return config


CONTACT_KEY = "{account_id}:{contact_id}"

CONTACT_CHANGES = TopicSpec("contact-changes", CONTACT_KEY, (ContactChange,))
# One partition: every instance reads all definitions, in the order they were applied.
DEFINITIONS = TopicSpec(
    "definitions", "{kind}:{account_id}:{id}", (DefinitionApplied,), Cleanup.COMPACT, partitions=1
)
ENROLLMENT_EVENTS = TopicSpec("enrollment-events", CONTACT_KEY, (EnrollmentEvent,))
ACTIONS = TopicSpec("actions", CONTACT_KEY, (ActionCommand,))
ACTION_RESULTS = TopicSpec("action-results", CONTACT_KEY, (ActionResult,))
# The consent audit trail is kept forever.
SUBSCRIPTION_CHANGES = TopicSpec(
    "subscription-changes", CONTACT_KEY, (SubscriptionChange,), retention_ms=-1
)
SMS_REQUESTS = TopicSpec("sms-requests", CONTACT_KEY, (SmsRequest,))
SMS_STATUS = TopicSpec("sms-status", CONTACT_KEY, (SmsStatusEvent,))
SMS_INBOUND = TopicSpec("sms-inbound", "{account_id}:{e164}", (InboundSms, ProviderOptOut))
DEAD_LETTERS = TopicSpec("dead-letters", "original key", (DeadLetter,))
# The SMS sender's idempotency ledger: latest state per key. Written to the partition of
# the request it belongs to, so it lines up with sms-requests. Kept 30 days, far beyond
# the retention of sms-requests, so a replayed request always finds its key.
SMS_LEDGER = TopicSpec(
    "sms-ledger",
    "{idempotency_key}",
    (SmsLedgerEntry,),
    Cleanup.COMPACT_DELETE,
    retention_ms=30 * 24 * 3600 * 1000,
)
# A number's opt-out, latest per ``{account_id}:{E.164}``: compacted and kept forever,
# since a STOP binds until that number itself opts back in.
OPT_OUTS = TopicSpec("opt-outs", "{account_id}:{e164}", (NumberOptOut,), Cleanup.COMPACT)
SMS_CLICKS = TopicSpec("sms-clicks", CONTACT_KEY, (SmsLinkClicked,))

ALL_TOPICS: tuple[TopicSpec, ...] = (
    CONTACT_CHANGES,
    DEFINITIONS,
    ENROLLMENT_EVENTS,
    ACTIONS,
    ACTION_RESULTS,
    SUBSCRIPTION_CHANGES,
    SMS_REQUESTS,
    SMS_STATUS,
    SMS_INBOUND,
    DEAD_LETTERS,
    SMS_LEDGER,
    OPT_OUTS,
    SMS_CLICKS,
)


def by_name(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
