"""``smsflow status`` reads sms-status from the start: a table, JSON lines, and --follow."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.topics import SMS_STATUS
from services.common.settings import KafkaSettings
from services.control.kafka import make_producer
from services.control.status import show
from tests.support import produce

pytestmark = pytest.mark.integration


def status(contact: str, state: SmsStatus, **fields: object) -> SmsStatusEvent:
    return SmsStatusEvent.model_validate(
        {
            "idempotency_key": f"sms-{contact}",
            "account_id": "acme",
            "contact_id": contact,
            "workflow_id": "welcome-flow",
            "message_id": "welcome",
            "status": state,
            **fields,
        }
    )


def test_table_json_and_follow(kafka_settings: KafkaSettings) -> None:
    produce(
        kafka_settings,
        SMS_STATUS,
        [
            status("1", SmsStatus.QUEUED, to_masked="+35840*****67", segments=1),
            status("1", SmsStatus.DELIVERED),
            status("2", SmsStatus.SKIPPED, reason="not_subscribed"),
        ],
    )
    producer = make_producer(kafka_settings)
    producer.send(kafka_settings.topic(SMS_STATUS), key=b"acme:3", value=b"{not json")
    producer.flush()
    producer.close()

    out, err = io.StringIO(), io.StringIO()
    show(kafka_settings, out=out, err=err)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # header, rule, one row per SMS
    assert "delivered" in lines[2]
    assert "+35840*****67" in lines[2]
    assert "not_subscribed" in lines[3]
    assert "skipped an undecodable record" in err.getvalue()

    out = io.StringIO()
    show(kafka_settings, as_json=True, contact="1", out=out, err=io.StringIO())
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["status"] for e in events] == ["queued", "delivered"]

    out = io.StringIO()
    later = threading.Timer(
        1.0, produce, (kafka_settings, SMS_STATUS, [status("2", SmsStatus.SKIPPED, reason="x")])
    )
    deadline = time.monotonic() + 20

    def stop() -> bool:
        return "  x" in out.getvalue() or time.monotonic() > deadline

    later.start()
    try:
        show(kafka_settings, follow=True, out=out, err=io.StringIO(), stop=stop)
    finally:
        later.join()
    followed = out.getvalue().splitlines()
    assert any(line.startswith("contact") for line in followed[4:])  # the follow header
    assert followed[-1].startswith("acme:2")
    assert "skipped" in followed[-1]
