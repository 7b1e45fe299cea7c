"""Before a send is decided: is every opt-out of the recipient's number already known?

Two waits, in this order. First the replies already in ``sms-inbound`` for the number's
partition must be applied (a STOP still being applied, or retried after a failure, holds
the send); then the view of ``opt-outs`` must have read everything written so far (a STOP
applied by the first wait, or by another instance, is in it). Either wait running out means
the number's state is unproved: the caller defers the send (fail closed).

The first wait covers the reply partitions this instance reads; with several instances,
the others' replies count once they are on ``opt-outs``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from schemas.contacts import PropertyValue
from schemas.definitions import Account
from schemas.sms import number_key
from services.action_runner.barrier import ConsentBarrier
from services.action_runner.phones import resolve_recipient
from services.common.number_opt_outs import NumberOptOuts, partition_of


class NumberConsent:
    def __init__(
        self,
        replies: ConsentBarrier,
        opt_outs: NumberOptOuts,
        partitions: int,
        reads: Callable[[str, int], bool],
        timeout_s: float,
    ) -> None:
        self.replies = replies
        self.opt_outs = opt_outs
        self.partitions = partitions
        self._reads = reads  # (topic, partition) -> whether this instance consumes it
        self.timeout_s = timeout_s

    def opted_out(self, account_id: str, number: str) -> bool:
        return self.opt_outs.opted_out(account_id, number)

    async def current(
        self, account_id: str, account: Account | None, contact: Mapping[str, PropertyValue]
    ) -> bool:
        """True once every opt-out of the contact's recipient number is in the view."""
        if account is not None:
            recipient = resolve_recipient(contact, account.spec.default_region)
            if recipient.e164 is not None:
                key = number_key(account_id, recipient.e164).encode()
                partition = partition_of(key, self.partitions)
                if self._reads(self.replies.topic, partition) and not await self.replies.wait(
                    partition
                ):
                    return False
        return await self.opt_outs.caught_up(self.timeout_s)

    async def close(self) -> None:
        await self.replies.close()
        await self.opt_outs.stop()
