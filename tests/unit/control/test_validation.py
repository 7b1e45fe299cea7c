"""Every apply-time error names the file, the document, the field and a fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from schemas.definitions import DefinitionApplied
from services.common.catalog import Catalog
from services.control.problems import Problem
from services.control.sources import SourceDocument, load_path
from services.control.validation import DOCUMENT, validate
from tests.samples import design_documents

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def sources(*docs: dict[str, Any], file: str = "defs.yaml") -> list[SourceDocument]:
    return [SourceDocument(Path(file), i, doc) for i, doc in enumerate(docs, start=1)]


def account() -> dict[str, Any]:
    return copy.deepcopy(design_documents()[0])


def message() -> dict[str, Any]:
    return copy.deepcopy(design_documents()[1])


def workflow() -> dict[str, Any]:
    return copy.deepcopy(design_documents()[2])


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def published(*docs: dict[str, Any]) -> Catalog:
    catalog = Catalog()
    for doc in docs:
        catalog.apply(DefinitionApplied(document=DOCUMENT.validate_python(doc)))
    return catalog


def test_the_design_documents_and_the_examples_are_valid() -> None:
    assert validate(sources(account(), message(), workflow()), Catalog())[1] == []
    parsed, problems = validate(load_path(EXAMPLES), Catalog())
    assert problems == []
    assert len(parsed) == 8


def test_references_may_point_to_published_documents() -> None:
    parsed, problems = validate(sources(workflow()), published(account(), message()))
    assert problems == []
    assert [p.document.kind for p in parsed] == ["Workflow"]


def test_send_sms_of_a_missing_message() -> None:
    wf = workflow()
    wf["spec"]["actions"][3]["message"] = "nope"
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert (found.file, found.index, found.field) == ("defs.yaml", 3, "spec.actions[3].message")
    assert found.document == "Workflow acme/welcome-flow"
    assert "'nope' does not exist in account 'acme'" in found.message
    assert "apply an SmsMessage" in found.fix


def test_send_sms_of_a_draft_message() -> None:
    msg = message()
    msg["spec"]["state"] = "draft"
    found = only(validate(sources(account(), msg, workflow()), Catalog())[1])
    assert found.field == "spec.actions[3].message"
    assert "is a draft" in found.message
    assert "spec.state: published" in found.fix


def test_send_sms_of_a_published_draft_is_checked_against_the_batch_not_the_topic() -> None:
    draft = message()
    draft["spec"]["state"] = "draft"
    # Published as published, but this batch turns it into a draft: the batch wins.
    problems = validate(sources(draft, workflow()), published(account(), message()))[1]
    assert "is a draft" in only(problems).message


def test_send_sms_of_a_message_not_sent_by_workflows() -> None:
    msg = message()
    msg["spec"]["delivery"] = "manual"
    found = only(validate(sources(account(), msg, workflow()), Catalog())[1])
    assert "not sent as part of a workflow" in found.message
    assert "delivery: workflow" in found.fix


def test_send_sms_of_another_accounts_message() -> None:
    other = account()
    other["metadata"]["id"] = "globex"
    other["spec"]["sender"] = "+358451234568"
    msg = message()
    msg["metadata"]["account"] = "globex"
    found = only(validate(sources(account(), other, msg, workflow()), Catalog())[1])
    assert found.index == 4
    assert "belongs to account 'globex', not 'acme'" in found.message


@pytest.mark.parametrize(
    ("drop", "field", "fix"),
    [
        ("legal_basis", "spec.actions[0].legal_basis", "add legal_basis"),
        ("legal_basis_explanation", "spec.actions[0].legal_basis_explanation", "explanation"),
        ("processing_legal_basis", "spec.actions[0].processing_legal_basis", "PROCESS_AND_STORE"),
    ],
)
def test_subscribing_needs_a_legal_basis_and_explanation(drop: str, field: str, fix: str) -> None:
    wf = workflow()
    del wf["spec"]["actions"][0][drop]
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert found.field == field
    assert fix in found.fix
    assert found.line == 1  # no lines known for hand-built sources: the document's start


def test_process_and_store_is_not_a_basis_for_communication() -> None:
    wf = workflow()
    wf["spec"]["actions"][0]["legal_basis"] = "PROCESS_AND_STORE"
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert found.field == "spec.actions[0].legal_basis"
    assert "not for communication" in found.message
    assert "CONSENT_WITH_NOTICE" in found.fix
    assert "PROCESS_AND_STORE in processing_legal_basis" in found.fix


def test_unsubscribing_needs_no_basis() -> None:
    wf = workflow()
    action = wf["spec"]["actions"][0]
    for field in ("legal_basis", "legal_basis_explanation", "processing_legal_basis"):
        del action[field]
    action["status"] = "unsubscribed"
    assert validate(sources(account(), message(), wf), Catalog())[1] == []


@pytest.mark.parametrize("object_type", ["deal", "ticket", "company"])
def test_workflows_of_other_objects_than_contacts_are_refused(object_type: str) -> None:
    """A8 (which replaces A5's narrower manage_subscription check): a non-contact workflow
    would be accepted and then enroll no one, so it is refused at apply."""
    wf = workflow()
    wf["spec"]["object_type"] = object_type
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert found.field == "spec.object_type"
    assert f"object_type {object_type} is not supported" in found.message
    assert "object_type: contact" in found.fix
    assert "fix: set spec.object_type: contact" in str(found)


def test_unknown_subscription_type_in_a_message_and_in_an_action() -> None:
    msg = message()
    msg["spec"]["subscription_type"] = "sms-news"
    wf = workflow()
    wf["spec"]["actions"][0]["subscription_type"] = "sms-other"
    problems = validate(sources(account(), msg, wf), Catalog())[1]
    assert [(p.index, p.field) for p in problems] == [
        (2, "spec.subscription_type"),
        (3, "spec.actions[0].subscription_type"),
    ]
    assert "'sms-news' is not defined by account 'acme'" in problems[0].message
    assert "sms-marketing" in problems[0].fix


def test_an_account_that_does_not_exist() -> None:
    problems = validate(sources(message(), workflow()), Catalog())[1]
    assert [(p.index, p.field) for p in problems] == [
        (1, "metadata.account"),
        (2, "metadata.account"),
    ]
    assert "account 'acme' does not exist" in problems[0].message


def test_a_template_syntax_error_in_the_body() -> None:
    msg = message()
    msg["spec"]["body"] = "Hei {{ contact.firstname | default('there') }! Tervetuloa."
    found = only(validate(sources(account(), msg, workflow()), Catalog())[1])
    assert found.field == "spec.body"
    assert "not a valid template" in found.message


def test_shape_errors_name_the_field_and_line(tmp_path: Path) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text(
        "apiVersion: smsflow/v1\nkind: Workflow\nmetadata: {id: w, account: acme}\n"
        "spec:\n  actions:\n    - {type: send_sms, mesage: welcome}\n  colour: blue\n"
    )
    problems = validate(load_path(file), Catalog())[1]
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"spec.actions[0].message", "spec.actions[0].mesage", "spec.colour"}
    assert by_field["spec.colour"].line == 7
    assert by_field["spec.actions[0].mesage"].line == 6
    assert "remove it or correct its spelling" in by_field["spec.colour"].fix
    assert str(by_field["spec.colour"]).startswith(f"{file}:7: document 1 (Workflow acme/w)")


def test_unknown_kind_and_non_mapping_documents() -> None:
    bad = account()
    bad["kind"] = "Acount"
    problems = validate(sources(bad, ["a", "list"]), Catalog())[1]  # type: ignore[arg-type]
    assert [(p.index, p.field) for p in problems] == [(1, "kind"), (2, "")]
    assert "Account, SmsMessage, Workflow" in problems[0].fix


def test_the_same_document_twice_in_one_batch() -> None:
    problems = validate(sources(account(), account()), Catalog())[1]
    found = only(problems)
    assert found.index == 2
    assert "defined twice" in found.message


def test_a_message_without_an_account_in_its_metadata() -> None:
    msg = message()
    del msg["metadata"]["account"]
    found = only(validate(sources(account(), msg), Catalog())[1])
    assert found.field == "metadata.account"
    assert "add metadata.account" in found.fix


def test_two_accounts_may_not_share_a_sender_number() -> None:
    other = account()
    other["metadata"]["id"] = "globex"
    problems = validate(sources(other), published(account()))[1]
    found = only(problems)
    assert found.field == "spec.sender"
    assert "already the sender of account 'acme'" in found.message
    other["spec"]["sender"] = "+358451234568"
    assert validate(sources(other), published(account()))[1] == []


def test_an_action_id_used_twice_in_one_workflow() -> None:
    doc = workflow()
    doc["spec"]["actions"][0]["id"] = "first"
    doc["spec"]["actions"][3]["id"] = "first"
    found = only(validate(sources(account(), message(), doc), Catalog())[1])
    assert found.field == "spec.actions"
    assert "'first' is used by more than one action" in found.message
    assert "id of its own" in found.fix


def test_actions_inside_branches_are_checked_and_branch_criteria_like_enrollment_criteria() -> None:
    wf = workflow()
    wf["spec"]["actions"].append(
        {
            "type": "branch",
            "branches": [
                {
                    "name": "vip",
                    "criteria": [[{"property": "vip", "operator": "eq", "value": "true"}]],
                    "actions": [{"type": "send_sms", "message": "nowhere"}],
                }
            ],
        }
    )
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert found.field == "spec.actions[4].branches[0].actions[0].message"
    assert "'nowhere' does not exist" in found.message

    wf["spec"]["actions"][4]["branches"][0]["criteria"] = [[{"property": "vip", "operator": "eq"}]]
    wf["spec"]["actions"][4]["branches"][0]["actions"] = []
    found = only(validate(sources(account(), message(), wf), Catalog())[1])
    assert found.field.startswith("spec.actions[4].branches[0].criteria[0][0]")
    assert "operator eq needs a 'value'" in found.message
