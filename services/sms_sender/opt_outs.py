"""The numbers each account may no longer send to, from the compacted ``opt-outs`` topic
(key ``{account_id}:{E.164}``, the latest record wins). Pure; fed by a ``CompactedView``.
"""

from __future__ import annotations

from schemas.sms import NumberOptOut, number_key


class OptOutView:
    def __init__(self) -> None:
        self._opted_out: set[str] = set()

    def __len__(self) -> int:
        return len(self._opted_out)

    def apply(self, batch: list[tuple[NumberOptOut, int]]) -> None:
        for record, _ in batch:
            if record.opted_out:
                self._opted_out.add(record.key)
            else:
                self._opted_out.discard(record.key)

    def opted_out(self, account_id: str, number: str) -> bool:
        return number_key(account_id, number) in self._opted_out
