"""What applying a valid batch changes: new revisions, unchanged documents skipped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from schemas.definitions import Account, DefinitionApplied, SmsMessage, Workflow, document_dump
from services.common.catalog import Catalog
from services.control.references import Definition

# Referenced documents go first, so a reader never sees a reference before its target.
_ORDER = {Account: 0, SmsMessage: 1, Workflow: 2}


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"  # a new revision of a document already published
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    document: Definition
    outcome: Outcome
    revision: int
    content_hash: str

    def event(self) -> DefinitionApplied:
        return DefinitionApplied(
            document=self.document, revision=self.revision, content_hash=self.content_hash
        )

    def __str__(self) -> str:
        doc = self.document
        name = (
            doc.metadata.id if isinstance(doc, Account) else f"{doc.account_id}/{doc.metadata.id}"
        )
        return f"{doc.kind} {name} {self.outcome.value} (revision {self.revision})"


def content_hash(document: Definition) -> str:
    """sha256 of the canonical JSON of the document (defaults filled in, keys sorted)."""
    canonical = json.dumps(
        document_dump(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def published_document(catalog: Catalog, document: Definition) -> Definition | None:
    if isinstance(document, Account):
        return catalog.account(document.metadata.id)
    if isinstance(document, SmsMessage):
        return catalog.message(document.account_id, document.metadata.id)
    return catalog.workflow(document.account_id, document.metadata.id)


def plan(documents: Iterable[Definition], published: Catalog) -> list[Change]:
    changes = []
    for document in sorted(documents, key=lambda d: _ORDER[type(d)]):
        digest = content_hash(document)
        current = published_document(published, document)
        revision = published.revision(document)
        if current is not None and content_hash(current) == digest:
            changes.append(Change(document, Outcome.UNCHANGED, max(revision, 1), digest))
        elif current is None and revision == 0:
            changes.append(Change(document, Outcome.CREATED, 1, digest))
        else:
            changes.append(Change(document, Outcome.CONFIGURED, revision + 1, digest))
    return changes
