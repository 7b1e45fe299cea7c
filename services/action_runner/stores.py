"""The runner's state: store names, and how a stored value is read back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.action_runner.consent import ConsentRecord
from services.common.records import Batch

CONSENT = "consent-ledger"  # account:contact -> ConsentRecord
ANSWERED = "answered-actions"  # action_id -> answers.answer(...)
SENT_SMS = "sent-sms"  # account:contact -> SentLog (frequency caps)
CONTACT_NUMBERS = "contact-numbers"  # account:contact -> ContactNumbers
NUMBERS = "number-index"  # account:+E164 -> NumberEntry
STORES = (CONSENT, ANSWERED, SENT_SMS, CONTACT_NUMBERS, NUMBERS)


def dump(model: BaseModel) -> dict[str, Any]:
    return dict(model.model_dump(mode="json"))


def ledger(batch: Batch, key: str) -> ConsentRecord | None:
    raw = batch.get(CONSENT, key)
    return None if raw is None else ConsentRecord.model_validate(raw)
