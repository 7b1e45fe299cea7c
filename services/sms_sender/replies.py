"""What an inbound reply publishes (pure).

A reply to an account's sender number becomes an ``InboundSms`` for that account (the
runner decides what it means). A reply to a number no account sends from cannot be
attributed, yet a STOP in it must not be lost: its number is opted out of every account
whose opt-out words the reply starts with (``opt-outs``, source ``reply``). Anything else
to an unknown number publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.definitions import Account
from schemas.sms import InboundSms, NumberOptOut, OptOutSource
from services.common import keywords
from services.sms_sender.callbacks import InboundReply
from services.sms_sender.reply_ids import reply_event_id

Published = InboundSms | NumberOptOut


def account_for(accounts: Sequence[Account], number: str) -> Account | None:
    """The account whose sender number ``number`` is."""
    return next((a for a in accounts if a.spec.sender == number), None)


def reply_events(reply: InboundReply, accounts: Sequence[Account]) -> list[Published]:
    """Raises ``pydantic.ValidationError`` for a ``from`` that is no E.164 number."""
    provider_id = reply.provider_message_id
    account = account_for(accounts, reply.to)
    if account is not None:
        event = InboundSms.model_validate(
            {
                "event_id": reply_event_id("inbound", account.metadata.id, provider_id),
                "account_id": account.metadata.id,
                "from": reply.from_,
                "to": reply.to,
                "body": reply.body,
                "provider_message_id": reply.provider_message_id,
            }
        )
        return [event]
    opt_outs: list[Published] = []
    for other in accounts:
        found = keywords.match(reply.body, opt_out_extra=other.spec.opt_out_keywords)
        if found is None or found.kind != "opt_out":
            continue
        opt_outs.append(
            NumberOptOut(
                event_id=reply_event_id("opt_out", other.metadata.id, provider_id),
                account_id=other.metadata.id,
                number=reply.from_,
                opted_out=True,
                keyword=found.keyword,
                source=OptOutSource.REPLY,
                provider_message_id=reply.provider_message_id,
            )
        )
    return opt_outs
