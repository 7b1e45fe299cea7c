"""Requests and ledger entries for the sender's unit tests."""

from __future__ import annotations

from typing import Any

from schemas.definitions import Account
from schemas.ledger import LedgerState, SmsLedgerEntry
from schemas.sms import SmsRequest
from services.sms_sender.statuses import new_entry


def request(n: int = 1, **changes: object) -> SmsRequest:
    data: dict[str, object] = {
        "idempotency_key": f"sms-key-{n:04d}",
        "account_id": "acme",
        "contact_id": f"c{n}",
        "workflow_id": "welcome-flow",
        "enrollment_id": f"enr-{n}",
        "message_id": "welcome",
        "to": f"+35840{n:07d}",
        "from": "+358451234567",
        "body": "Hei! Tervetuloa.",
        "encoding": "gsm7",
        "segments": 1,
        "to_masked": "+35840*****00",
    }
    data.update(changes)
    return SmsRequest.model_validate(data)


def entry(
    state: LedgerState, n: int = 1, api: str = "http", attempts: int = 1, **fields: object
) -> SmsLedgerEntry:
    return new_entry(request(n), state, api=api, attempts=attempts, **fields)


ACME = "+358451234567"  # acme's sender number
PHONE = "+358401111111"  # a recipient's


def account(account_id: str, sender: str, **spec: Any) -> Account:
    return Account.model_validate(
        {
            "apiVersion": "smsflow/v1",
            "kind": "Account",
            "metadata": {"id": account_id},
            "spec": {"sms_access": True, "sender": sender, **spec},
        }
    )


# Two accounts; acme has its own (Finnish) opt-out word.
ACCOUNTS = [account("acme", ACME, opt_out_keywords=["LOPETA"]), account("beta", "+15551230000")]
