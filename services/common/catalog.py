"""The current definitions (accounts, SMS messages, workflows), indexed for look-ups.

Pure: fed ``DefinitionApplied`` events (or tombstones) by whoever reads the topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.definitions import (
    Account,
    DefinitionApplied,
    SmsMessage,
    Workflow,
    parse_definition_key,
)


@dataclass
class Catalog:
    accounts: dict[str, Account] = field(default_factory=dict)
    messages: dict[tuple[str, str], SmsMessage] = field(default_factory=dict)
    workflows: dict[tuple[str, str], Workflow] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)  # definition key -> revision

    def apply(self, event: DefinitionApplied) -> None:
        doc = event.document
        self.revisions[doc.key] = event.revision
        if isinstance(doc, Account):
            self.accounts[doc.metadata.id] = doc
        elif isinstance(doc, SmsMessage):
            self.messages[(doc.account_id, doc.metadata.id)] = doc
        else:
            self.workflows[(doc.account_id, doc.metadata.id)] = doc

    def remove(self, key: str) -> None:
        """A tombstone on the compacted topic deletes the definition."""
        kind, account_id, object_id = parse_definition_key(key)
        self.revisions.pop(key, None)
        if kind == "Account":
            self.accounts.pop(object_id, None)
        elif kind == "SmsMessage":
            self.messages.pop((account_id, object_id), None)
        elif kind == "Workflow":
            self.workflows.pop((account_id, object_id), None)

    def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def message(self, account_id: str, message_id: str) -> SmsMessage | None:
        return self.messages.get((account_id, message_id))

    def workflow(self, account_id: str, workflow_id: str) -> Workflow | None:
        return self.workflows.get((account_id, workflow_id))

    def workflows_of(self, account_id: str) -> Iterator[Workflow]:
        return (w for (a, _), w in self.workflows.items() if a == account_id)

    def revision(self, document: Account | SmsMessage | Workflow) -> int:
        return self.revisions.get(document.key, 0)
