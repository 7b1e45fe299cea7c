from __future__ import annotations

import copy

from schemas.definitions import DefinitionApplied
from services.common.catalog import Catalog
from services.control.plan import Outcome, content_hash, plan
from services.control.validation import DOCUMENT
from tests.samples import design_documents


def documents() -> list:
    return [DOCUMENT.validate_python(d) for d in design_documents()]


def test_first_apply_creates_revision_1_accounts_first() -> None:
    account, message, workflow = documents()
    changes = plan([workflow, message, account], Catalog())
    assert [c.document.kind for c in changes] == ["Account", "SmsMessage", "Workflow"]
    assert {(c.outcome, c.revision) for c in changes} == {(Outcome.CREATED, 1)}
    assert str(changes[2]) == "Workflow acme/welcome-flow created (revision 1)"


def test_unchanged_documents_are_skipped_and_a_changed_one_gets_the_next_revision() -> None:
    docs = documents()
    catalog = Catalog()
    for doc in docs:
        catalog.apply(DefinitionApplied(document=doc, revision=1, content_hash=content_hash(doc)))
    catalog.apply(DefinitionApplied(document=docs[2], revision=4))  # applied 4 times so far
    raw = copy.deepcopy(design_documents()[2])
    raw["spec"]["actions"][2] = {"type": "delay", "minutes": 10}
    changed = DOCUMENT.validate_python(raw)
    changes = plan([docs[0], docs[1], changed], catalog)
    assert [(c.outcome, c.revision) for c in changes] == [
        (Outcome.UNCHANGED, 1),
        (Outcome.UNCHANGED, 1),
        (Outcome.CONFIGURED, 5),
    ]
    assert changes[2].event().revision == 5
    assert changes[2].event().content_hash == content_hash(changed)


def test_the_hash_ignores_how_defaults_and_key_order_are_written() -> None:
    raw = copy.deepcopy(design_documents()[1])
    explicit = DOCUMENT.validate_python(raw)
    del raw["spec"]["delivery"]  # the default, workflow
    raw["spec"] = dict(reversed(list(raw["spec"].items())))
    assert content_hash(DOCUMENT.validate_python(raw)) == content_hash(explicit)
    raw["spec"]["body"] += "!"
    assert content_hash(DOCUMENT.validate_python(raw)) != content_hash(explicit)
