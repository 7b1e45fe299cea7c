from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas import generate
from schemas.contacts import ContactChange
from schemas.definitions import Account, Document, Workflow
from schemas.registry import EVENT_MODELS
from schemas.topics import ALL_TOPICS, DEFINITIONS, SUBSCRIPTION_CHANGES, Cleanup, by_name
from services.common.codec import DecodeError, decode, encode
from tests.samples import design_documents, samples

DOCUMENT = TypeAdapter(Document)


def test_checked_in_json_schemas_are_current() -> None:
    wanted = generate.rendered()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in generate.JSON_DIR.glob("*.json")}
    assert on_disk == wanted, "run `python -m schemas.generate` and commit schemas/json/"


def test_every_event_type_has_a_sample() -> None:
    assert {s.event_type for s in samples()} == set(EVENT_MODELS)


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.event_type)
def test_events_survive_encode_decode(event: object) -> None:
    model = type(event)
    assert decode(model, encode(event)) == event  # type: ignore[arg-type]


def test_design_documents_parse() -> None:
    kinds = [DOCUMENT.validate_python(d).kind for d in design_documents()]
    assert kinds == ["Account", "SmsMessage", "Workflow"]


def test_account_defaults_to_hubspot_quiet_hours_and_null_disables() -> None:
    doc = design_documents()[0]
    doc["spec"] = {"sender": "+358451234567"}  # type: ignore[index]
    account = Account.model_validate(doc)
    assert account.spec.quiet_hours is not None
    assert (account.spec.quiet_hours.start.hour, account.spec.quiet_hours.end.hour) == (20, 8)
    doc["spec"] = {"sender": "+358451234567", "quiet_hours": None}  # type: ignore[index]
    assert Account.model_validate(doc).spec.quiet_hours is None


def _error_locations(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (
            lambda s: s["actions"][0].pop("legal_basis"),
            "spec.actions.0.manage_subscription",
            "legal_basis",
        ),
        (lambda s: s["actions"][0].update(legal_basis="BECAUSE"), "legal_basis", "Input should be"),
        (lambda s: s["actions"].append({"type": "send_email"}), "spec.actions.4", "does not match"),
        (lambda s: s["enrollment"]["criteria"][0][0].update(operator="like"), "operator", ""),
        (lambda s: s["enrollment"]["criteria"][0][0].pop("values"), "criteria", "values"),
        (lambda s: s.update(object_type="deal"), "spec", "object_type deal is not supported"),
        (lambda s: s.update(enabeld=True), "spec.enabeld", "Extra inputs"),
        (lambda s: s["actions"].append({"type": "delay"}), "spec.actions.4.delay", "needs days"),
    ],
)
def test_invalid_workflows_name_the_field(mutate, field: str, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = design_documents()[2]
    mutate(doc["spec"])
    with pytest.raises(ValidationError) as info:
        Workflow.model_validate(doc)
    assert any(field in loc for loc in _error_locations(info.value)), _error_locations(info.value)
    assert message in str(info.value)


def test_contact_change_rejects_wrong_types_with_a_named_field() -> None:
    raw = json.dumps(
        {
            "event_id": "e1",
            "event_type": "contact.changed",
            "account_id": "acme",
            "contact_id": "1",
            "occurred_at": "2026-11-27T10:00:00Z",
            "properties": {"nested": {"not": "allowed"}},
        }
    ).encode()
    with pytest.raises(DecodeError) as info:
        decode(ContactChange, raw)
    assert "properties.nested" in info.value.reason


def test_malformed_json_is_named_as_such() -> None:
    with pytest.raises(DecodeError, match="malformed JSON"):
        decode(ContactChange, b'{"event_id": ')


def test_ids_may_not_contain_the_key_separator() -> None:
    with pytest.raises(ValidationError, match="account_id"):
        ContactChange(account_id="a:b", contact_id="1")


def test_topic_registry_matches_the_contract() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert names == [
        "contact-changes",
        "definitions",
        "enrollment-events",
        "actions",
        "action-results",
        "subscription-changes",
        "sms-requests",
        "sms-status",
        "sms-inbound",
        "dead-letters",
        "sms-ledger",
        "opt-outs",
        "sms-clicks",
    ]
    assert DEFINITIONS.cleanup is Cleanup.COMPACT
    # A STOP binds until the number opts back in: latest state per number, never deleted.
    assert by_name("opt-outs").config() == {"cleanup.policy": "compact"}
    assert SUBSCRIPTION_CHANGES.config() == {"cleanup.policy": "delete", "retention.ms": "-1"}
