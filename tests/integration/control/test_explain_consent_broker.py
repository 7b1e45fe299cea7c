"""``smsflow explain`` and ``smsflow consent show`` answer from the topics alone (no service
runs here): properties folded, the failed filter named, every skip reason explained, the
consent trail with legal basis, phone numbers masked."""

from __future__ import annotations

import json

import pytest

from schemas.actions import ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied
from schemas.enrollment import EnrollmentDecision, EnrollmentEvent
from schemas.sms import NumberOptOut, OptOutSource, SmsStatus, SmsStatusEvent
from schemas.subscriptions import (
    ConsentSource,
    LegalBasis,
    SubscriptionChange,
    SubscriptionStatus,
)
from schemas.topics import (
    ACTION_RESULTS,
    CONTACT_CHANGES,
    DEFINITIONS,
    ENROLLMENT_EVENTS,
    OPT_OUTS,
    SMS_STATUS,
    SUBSCRIPTION_CHANGES,
)
from services.common.settings import KafkaSettings
from services.control import consent_history
from services.control.contact_history import load_history
from services.control.explain import explain, render
from services.control.explain import main as explain_main
from tests.samples import design_documents
from tests.support import produce

pytestmark = pytest.mark.integration

NUMBER = "+358401234567"


def status(contact: str, state: SmsStatus, reason: str | None = None) -> SmsStatusEvent:
    return SmsStatusEvent(
        idempotency_key=f"k-{contact}-{state}-{reason}",
        account_id="acme",
        contact_id=contact,
        workflow_id="welcome-flow",
        message_id="welcome",
        status=state,
        reason=reason,
        to_masked="+35840*****67",
    )


@pytest.fixture
def published(kafka_settings: KafkaSettings) -> KafkaSettings:
    s = kafka_settings
    produce(
        s,
        DEFINITIONS,
        [DefinitionApplied.model_validate({"document": d}) for d in design_documents()],
    )
    produce(
        s,
        CONTACT_CHANGES,
        [
            ContactChange(
                account_id="acme",
                contact_id="1",
                properties={"mobilephone": "040 123 4567", "lifecyclestage": "lead"},
            ),
            ContactChange(account_id="acme", contact_id="1", properties={"firstname": "Aino"}),
            ContactChange(
                account_id="acme", contact_id="2", properties={"lifecyclestage": "customer"}
            ),
        ],
    )
    produce(
        s,
        ENROLLMENT_EVENTS,
        [
            EnrollmentEvent(
                account_id="acme",
                contact_id="2",
                workflow_id="welcome-flow",
                decision=EnrollmentDecision.ENROLLED,
                enrollment_id="acme/welcome-flow/2/1",
                reason="criteria_met",
            )
        ],
    )
    produce(
        s,
        ACTION_RESULTS,
        [
            ActionResult(
                action_id="a1",
                account_id="acme",
                contact_id="2",
                workflow_id="welcome-flow",
                enrollment_id="acme/welcome-flow/2/1",
                step=3,
                outcome=ActionOutcome.SKIPPED,
                reason="frequency_capped",
            )
        ],
    )
    produce(
        s,
        SUBSCRIPTION_CHANGES,
        [
            SubscriptionChange(
                account_id="acme",
                contact_id="1",
                subscription_type="sms-marketing",
                status=SubscriptionStatus.SUBSCRIBED,
                legal_basis=LegalBasis.CONSENT_WITH_NOTICE,
                legal_basis_explanation="Ticked the SMS box at checkout",
                source=ConsentSource.WORKFLOW,
                source_id="welcome-flow",
            ),
            SubscriptionChange(
                account_id="acme",
                contact_id="1",
                status=SubscriptionStatus.UNSUBSCRIBED,
                previous_status=SubscriptionStatus.SUBSCRIBED,
                source=ConsentSource.INBOUND_KEYWORD,
                source_id="STOP",
                phone_masked="+35840*****67",
            ),
        ],
    )
    produce(
        s,
        OPT_OUTS,
        [
            NumberOptOut(
                account_id="acme",
                number=NUMBER,
                opted_out=True,
                keyword="STOP",
                source=OptOutSource.REPLY,
            )
        ],
    )
    produce(
        s,
        SMS_STATUS,
        [
            status("1", SmsStatus.SKIPPED, "not_subscribed"),
            status("2", SmsStatus.SKIPPED, "frequency_capped"),
            status("2", SmsStatus.DEFERRED, "sending_window"),
            status("2", SmsStatus.SKIPPED, "a_reason_from_the_future"),
        ],
    )
    return s


def test_explain_tells_the_story(published: KafkaSettings) -> None:
    story = explain(load_history(published, "acme", "1"))
    assert story["properties"]["firstname"] == "Aino"
    assert story["properties"]["lifecyclestage"] == "lead"
    assert story["properties"]["mobilephone"] == "+35840*****67"  # masked, as in status events
    (welcome,) = [w for w in story["workflows"] if w["workflow_id"] == "welcome-flow"]
    assert welcome["criteria_match_now"] is False
    assert welcome["failed_filters"][0]["filter"] == "lifecyclestage is_any_of ['customer']"
    assert welcome["failed_filters"][0]["contact_value"] == "lead"
    (sms,) = story["sms"]
    assert sms["reason"] == "not_subscribed"
    assert "unsubscribed" in sms["why"]
    assert "STOP" in sms["why"]  # said STOP, not "never subscribed"
    kinds = [c["kind"] for c in story["consent"]]
    assert kinds.count("subscription") == 2
    assert "number_opt_out" in kinds
    text = render(story)
    assert "lifecyclestage is_any_of ['customer']" in text
    assert "Ticked the SMS box at checkout" in text
    for output in (text, json.dumps(story)):
        assert NUMBER not in output
        assert "0401234567" not in output.replace(" ", "")


def test_explain_distinguishes_every_reason(
    published: KafkaSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", published.kafka_bootstrap_servers)
    monkeypatch.setenv("SMSFLOW_TOPIC_PREFIX", published.topic_prefix)
    assert explain_main(["acme", "2", "--json"]) == 0
    story = json.loads(capsys.readouterr().out)
    (welcome,) = [w for w in story["workflows"] if w["workflow_id"] == "welcome-flow"]
    assert welcome["criteria_match_now"] is True
    assert [e["decision"] for e in story["enrollments"]] == ["enrolled"]
    assert story["actions"][0]["reason"] == "frequency_capped"
    whys = {s["reason"]: s["why"] for s in story["sms"]}
    assert "frequency cap" in whys["frequency_capped"]
    assert "sending window" in whys["sending_window"]
    assert whys["a_reason_from_the_future"] == "a_reason_from_the_future"
    assert story["consent"] == []
    assert explain_main(["acme", "2"]) == 0
    assert "never subscribed" not in capsys.readouterr().out  # no not_subscribed SMS here


def test_consent_show_contact_and_number(
    published: KafkaSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP_SERVERS", published.kafka_bootstrap_servers)
    monkeypatch.setenv("SMSFLOW_TOPIC_PREFIX", published.topic_prefix)
    assert consent_history.main(["show", "acme", "1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["subscription", "subscription", "number_opt_out"]
    assert rows[0]["legal_basis"] == "CONSENT_WITH_NOTICE"
    assert rows[0]["legal_basis_explanation"] == "Ticked the SMS box at checkout"
    assert rows[0]["source"] == "workflow welcome-flow"
    assert rows[1]["source"] == "inbound_keyword STOP"
    assert rows[2]["source"] == "reply"
    assert all(r["at"] for r in rows)

    assert consent_history.main(["show", "acme", "--number", NUMBER]) == 0
    text = capsys.readouterr().out
    assert "opted out by reply 'STOP'" in text
    assert "inbound_keyword STOP" in text  # the subscription change that names the number
    assert "workflow welcome-flow" not in text  # not about this number
    assert NUMBER not in text
    assert consent_history.main(["show", "acme"]) == 2  # neither contact nor number
