"""The pure story of ``smsflow explain``: failed filters, reasons in words, masking."""

from __future__ import annotations

import json

from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied, Workflow
from schemas.sms import SmsStatus, SmsStatusEvent
from schemas.subscriptions import ConsentSource, SubscriptionChange, SubscriptionStatus
from services.control.contact_history import ContactHistory
from services.control.explain import explain, failed_filters, render, workflow_verdict
from tests.samples import design_documents


def history(*events: object) -> ContactHistory:
    found = ContactHistory("acme", "1")
    for document in design_documents():
        found.catalog.apply(DefinitionApplied.model_validate({"document": document}))
    for event in events:
        found.add(event)  # type: ignore[arg-type]
    return found


def workflow(spec: str) -> Workflow:
    import yaml

    body = yaml.safe_load(spec)
    return Workflow.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "Workflow",
            "metadata": {"id": "w", "account": "acme"},
            "spec": body,
        }
    )


def test_the_first_failing_filter_of_each_group_is_named() -> None:
    flow = workflow(
        """
enabled: true
enrollment:
  criteria:
    - - {property: lifecyclestage, operator: eq, value: customer}
      - {property: vip, operator: eq, value: "true"}
    - [{property: country, operator: is_any_of, values: [FI, SE]}]
suppression:
  - [{property: email, operator: contains, value: "@competitor"}]
"""
    )
    properties = {"lifecyclestage": "customer", "vip": "false", "email": "a@competitor.fi"}
    failures = failed_filters(flow.spec.enrollment.criteria, properties)
    assert [f["filter"] for f in failures] == ["vip eq true", "country is_any_of ['FI', 'SE']"]
    assert [f["contact_value"] for f in failures] == ["false", None]
    verdict = workflow_verdict(flow, properties)
    assert verdict["criteria_match_now"] is False
    assert verdict["suppressed_now"] is True
    assert workflow_verdict(flow, {"country": "FI"})["criteria_match_now"] is True
    assert workflow_verdict(flow, {"country": "FI"})["failed_filters"] == []


def test_properties_fold_and_numbers_are_masked() -> None:
    story = explain(
        history(
            ContactChange(
                account_id="acme",
                contact_id="1",
                properties={"mobilephone": "040 123 4567", "x": "1"},
            ),
            ContactChange(
                account_id="acme",
                contact_id="1",
                properties={"x": None, "note": "call +358401234567"},
            ),
        )
    )
    assert story["properties"] == {"mobilephone": "+35840*****67", "note": "call +35840*****67"}
    assert "0401234567" not in json.dumps(story).replace(" ", "")


def not_subscribed() -> SmsStatusEvent:
    return SmsStatusEvent(
        idempotency_key="k",
        account_id="acme",
        contact_id="1",
        workflow_id="welcome-flow",
        status=SmsStatus.SKIPPED,
        reason="not_subscribed",
    )


def test_not_subscribed_says_stop_or_never() -> None:
    (never,) = explain(history(not_subscribed()))["sms"]
    assert "never subscribed" in never["why"]
    stop = SubscriptionChange(
        account_id="acme",
        contact_id="1",
        status=SubscriptionStatus.UNSUBSCRIBED,
        source=ConsentSource.INBOUND_KEYWORD,
        source_id="STOP",
    )
    (said_stop,) = explain(history(stop, not_subscribed()))["sms"]
    assert "unsubscribed (inbound_keyword STOP" in said_stop["why"]


def test_the_story_reads_for_people() -> None:
    text = render(explain(history(not_subscribed())))
    assert "welcome-flow [on]: criteria do not match: lifecyclestage is_any_of ['customer']" in text
    assert "welcome-flow: skipped: the contact was never subscribed" in text
    assert "no contact change was ever published" in text
