"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright): the
counts of the demo's contacts, a live update without a reload, no full number in the DOM."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.topics import DEAD_LETTERS, ENROLLMENT_EVENTS, SMS_STATUS
from services.common.settings import KafkaSettings
from tests.integration.control.dashboard_process import running_dashboard
from tests.support import produce

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[3] / ".smsflow" / "dashboard.png"
# Full numbers the events below carry: none may reach the page.
NUMBERS = ("+358401234567", "+358401234568", "+358409999999")


def demo_events() -> tuple[list[EnrollmentEvent], list[SmsStatusEvent]]:
    """The statuses of the demo's contacts (examples/contacts/demo-contacts.yaml)."""

    def sms(
        contact: str, workflow: str, *steps: tuple[SmsStatus, str | None]
    ) -> list[SmsStatusEvent]:
        return [
            SmsStatusEvent(
                idempotency_key=f"{workflow}-{contact}",
                account_id="acme",
                contact_id=contact,
                workflow_id=workflow,
                message_id="welcome",
                status=status,
                reason=reason,
                to_masked="+35840*****67",
            )
            for status, reason in steps
        ]

    delivered = ((SmsStatus.QUEUED, None), (SmsStatus.SENT, None), (SmsStatus.DELIVERED, None))
    statuses = [
        *sms("1001", "welcome-flow", *delivered),
        *sms("1002", "welcome-flow", *delivered),
        *sms("1003", "welcome-flow", (SmsStatus.SKIPPED, "no_phone_number")),
        *sms("1004", "welcome-flow", (SmsStatus.SKIPPED, "invalid_phone_number")),
        *sms("1002", "vip-flow", (SmsStatus.SKIPPED, "not_subscribed")),
        *sms("1005", "vip-flow", (SmsStatus.QUEUED, None), (SmsStatus.SENT, None)),
        *sms("1005", "vip-flow", (SmsStatus.FAILED, "30003")),
    ]
    # A producer that forgot to mask: the page must mask it all the same.
    statuses.append(
        SmsStatusEvent(
            idempotency_key="welcome-flow-1006",
            account_id="acme",
            contact_id="1006",
            workflow_id="welcome-flow",
            status=SmsStatus.SKIPPED,
            reason="opted_out",
            to_masked=NUMBERS[0],
        )
    )
    enrollments = [
        EnrollmentEvent(
            account_id="acme",
            contact_id=contact,
            workflow_id=workflow,
            decision=EnrollmentDecision.ENROLLED,
        )
        for contact, workflow in [
            ("1001", "welcome-flow"),
            ("1002", "welcome-flow"),
            ("1003", "welcome-flow"),
            ("1004", "welcome-flow"),
            ("1006", "welcome-flow"),
            ("1002", "vip-flow"),
            ("1005", "vip-flow"),
        ]
    ]
    return enrollments, statuses


def commit_group(settings: KafkaSettings, service: str, offset: int) -> None:
    """A service's consumer group that has consumed ``offset`` records of each partition."""
    topic = settings.topic(SMS_STATUS)
    consumer = KafkaConsumer(
        **settings.client_config(),
        group_id=f"{settings.topic_prefix}{service}",
        enable_auto_commit=False,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp in partitions})
    finally:
        consumer.close()


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing: `make browser` installs it")
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_dashboard_counts_live_update_and_masking(kafka_settings: KafkaSettings, browser) -> None:  # type: ignore[no-untyped-def]
    enrollments, statuses = demo_events()
    produce(kafka_settings, ENROLLMENT_EVENTS, enrollments)
    produce(kafka_settings, SMS_STATUS, statuses)
    produce(
        kafka_settings,
        DEAD_LETTERS,
        [
            DeadLetter(
                service="enroller",
                topic=kafka_settings.topic(ENROLLMENT_EVENTS),
                partition=0,
                offset=1,
                key="acme:1007",
                reason=f"malformed JSON near {NUMBERS[2]}",
                error_type="DecodeError",
            )
        ],
    )
    commit_group(kafka_settings, "sms-sender", 0)

    from playwright.sync_api import expect

    with running_dashboard(kafka_settings) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/")
        welcome = page.locator('tr[data-row="acme/welcome-flow"]')
        vip = page.locator('tr[data-row="acme/vip-flow"]')

        def count(row, column: str):  # type: ignore[no-untyped-def]
            return row.locator(f'td[data-col="{column}"]')

        expect(count(welcome, "enrolled")).to_have_text("5")
        expect(count(welcome, "delivered")).to_have_text("2")
        expect(count(welcome, "skipped")).to_have_text("3")
        expect(count(welcome, "skipped:no_phone_number")).to_have_text("1")
        expect(count(welcome, "skipped:invalid_phone_number")).to_have_text("1")
        expect(count(welcome, "skipped:opted_out")).to_have_text("1")
        expect(count(vip, "enrolled")).to_have_text("2")
        expect(count(vip, "failed")).to_have_text("1")
        expect(count(vip, "sent")).to_have_text("0")  # moved on to failed
        expect(count(vip, "skipped:not_subscribed")).to_have_text("1")
        expect(page.locator("#dead-letters-total")).to_have_text("1")
        expect(page.locator('#lag tr[data-service="sms-sender"] td').nth(1)).to_have_text(
            str(len(statuses))
        )
        expect(page.locator("#connection")).to_have_text("live")

        # Live: new events show up without a reload (the marker would vanish with one).
        page.evaluate("window.__sameDocument = true")
        produce(
            kafka_settings,
            SMS_STATUS,
            [
                SmsStatusEvent(
                    idempotency_key="welcome-flow-1008",
                    account_id="acme",
                    contact_id="1008",
                    workflow_id="welcome-flow",
                    status=status,
                    to_masked="+35840*****68",
                )
                for status in (SmsStatus.QUEUED, SmsStatus.SENT, SmsStatus.DELIVERED)
            ],
        )
        expect(count(welcome, "delivered")).to_have_text("3", timeout=15_000)
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("#latest tbody tr").first).to_contain_text("1008")

        html = page.content()
        text = page.locator("body").inner_text()
        for number in NUMBERS:
            for where in (html, text):
                assert number not in where
                assert number[1:] not in where
                assert number[4:] not in where  # nor in national form
        assert not re.search(r"\+?\d{9,}", text.replace(" ", ""))
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 0
