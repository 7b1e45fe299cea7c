"""SMS requests and status read-back for the integration tests."""

from __future__ import annotations

from collections import defaultdict

from schemas.envelope import Event
from schemas.sms import InboundSms, ProviderOptOut, SmsRequest, SmsStatus, SmsStatusEvent
from schemas.topics import SMS_INBOUND, SMS_STATUS
from services.common.codec import decode
from services.common.settings import KafkaSettings
from tests.support import read_all, read_models


def make_requests(count: int, prefix: str, sender: str = "+358451234567") -> list[SmsRequest]:
    return [
        SmsRequest.model_validate(
            {
                "idempotency_key": f"{prefix}-{n:05d}",
                "account_id": "acme",
                "contact_id": f"c{n}",
                "workflow_id": "welcome-flow",
                "enrollment_id": f"enr-{n}",
                "message_id": "welcome",
                "to": f"+3584{n:08d}",
                "from": sender,
                "body": f"Hei {n}! Tervetuloa.",
                "encoding": "gsm7",
                "segments": 1,
                "to_masked": "+3584*****00",
            }
        )
        for n in range(count)
    ]


def statuses_by_key(settings: KafkaSettings) -> dict[str, list[SmsStatusEvent]]:
    by_key: dict[str, list[SmsStatusEvent]] = defaultdict(list)
    for event in read_models(settings, SMS_STATUS, SmsStatusEvent):
        by_key[event.idempotency_key or ""].append(event)
    return by_key


def final_status(events: list[SmsStatusEvent]) -> SmsStatus | None:
    """The last status of a key, delivered/undelivered outranking sent."""
    seen = {e.status for e in events}
    for status in (
        SmsStatus.DELIVERED,
        SmsStatus.UNDELIVERED,
        SmsStatus.FAILED,
        SmsStatus.SKIPPED,
        SmsStatus.SENT,
    ):
        if status in seen:
            return status
    return None


def inbound_events(settings: KafkaSettings) -> list[InboundSms | ProviderOptOut]:
    """``sms-inbound`` carries two event types: decode each by its ``event_type``."""
    events: list[InboundSms | ProviderOptOut] = []
    for _, value in read_all(settings, SMS_INBOUND):
        kind = decode(Event, value).event_type
        events.append(decode(InboundSms if kind == "sms.inbound" else ProviderOptOut, value))
    return events
