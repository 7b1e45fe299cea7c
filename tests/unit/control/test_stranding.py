"""A change that would strand contacts is refused at apply, naming the documents in the way."""

from __future__ import annotations

from typing import Any

from services.control.stranding import walk
from services.control.validation import validate
from tests.unit.control.test_validation import (
    account,
    message,
    only,
    published,
    sources,
    workflow,
)

OTHER_TYPE = {"id": "sms-news", "name": "News SMS"}


def _without_types(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"]["subscription_types"] = [OTHER_TYPE]
    return doc


def test_removing_a_type_a_published_message_and_an_enabled_workflow_use_is_refused() -> None:
    found = only(
        validate(sources(_without_types(account())), published(account(), message(), workflow()))[1]
    )
    assert found.document == "Account acme"
    assert found.field == "spec.subscription_types"
    assert "subscription type 'sms-marketing' would be removed" in found.message
    assert "SmsMessage acme/welcome and Workflow acme/welcome-flow" in found.message
    assert "stranded" in found.message
    assert "keep {id: sms-marketing, name: ...} in spec.subscription_types" in found.fix


def test_removing_a_type_only_a_disabled_workflow_uses_is_allowed() -> None:
    wf = workflow()
    wf["spec"]["enabled"] = False
    draft = message()
    draft["spec"]["state"] = "draft"
    assert validate(sources(_without_types(account())), published(account(), draft, wf))[1] == []


def test_a_type_removed_together_with_its_users_is_judged_on_the_batch() -> None:
    msg = message()
    msg["spec"]["subscription_type"] = "sms-news"
    wf = workflow()
    wf["spec"]["actions"][0]["subscription_type"] = "sms-news"
    batch = sources(_without_types(account()), msg, wf)
    assert validate(batch, published(account(), message(), workflow()))[1] == []


def test_turning_a_message_back_to_draft_while_an_enabled_workflow_sends_it_is_refused() -> None:
    draft = message()
    draft["spec"]["state"] = "draft"
    found = only(validate(sources(draft), published(account(), message(), workflow()))[1])
    assert found.document == "SmsMessage acme/welcome"
    assert found.field == "spec.state"
    assert "would become a draft but is sent by enabled Workflow acme/welcome-flow" in (
        found.message
    )
    assert found.fix.startswith("keep spec.state: published, or first disable")


def test_turning_a_message_to_manual_delivery_while_a_workflow_sends_it_is_refused() -> None:
    manual = message()
    manual["spec"]["delivery"] = "manual"
    found = only(validate(sources(manual), published(account(), message(), workflow()))[1])
    assert found.field == "spec.delivery"
    assert "keep spec.delivery: workflow" in found.fix


def test_a_draft_is_allowed_once_the_workflow_is_disabled_in_the_same_batch() -> None:
    draft = message()
    draft["spec"]["state"] = "draft"
    off = workflow()
    off["spec"]["enabled"] = False
    off["spec"]["actions"] = off["spec"]["actions"][:3]
    assert validate(sources(draft, off), published(account(), message(), workflow()))[1] == []


def test_walk_reaches_actions_nested_in_branches() -> None:
    class Node:
        def __init__(self, name: str, **fields: Any) -> None:
            self.name = name
            self.__dict__.update(fields)

    inner = Node("inner")
    tree = [
        Node(
            "pick",
            branches=[Node("vip", actions=[Node("vip-sms", default=[inner])])],
            default=[Node("plain")],
        )
    ]
    assert [n.name for n in walk(tree)] == ["pick", "vip-sms", "inner", "plain"]
