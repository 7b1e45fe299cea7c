"""A local view of the compacted ``opt-outs`` topic: which numbers opted out, per account.

A ``CompactedView`` tails every partition from the beginning on the event loop (no consumer
group), keeping the latest ``NumberOptOut`` per ``{account_id}:{E.164}``. ``caught_up()``
returns True once every record written before the call is in the view, so a decision taken
after it sees every opt-out the broker had acknowledged by then; False when that cannot be
proved (timeout, view not running), and the caller then fails closed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2

from schemas.sms import NumberOptOut, number_key
from services.common.compacted_view import Change, CompactedView


class NumberOptOuts:
    def __init__(self, topic: str, client_options: Mapping[str, Any]) -> None:
        self.topic = topic
        self._latest: dict[str, NumberOptOut] = {}
        # Keys whose latest record could not be read: treated as opted out (fail closed).
        self._unreadable: set[str] = set()
        self.view = CompactedView(topic, client_options, NumberOptOut, self.apply)
        self.loaded = self.view.loaded  # set once read to the end offsets of its start

    def get(self, account_id: str, number: str) -> NumberOptOut | None:
        return self._latest.get(number_key(account_id, number))

    def opted_out(self, account_id: str, number: str) -> bool:
        key = number_key(account_id, number)
        record = self._latest.get(key)
        return key in self._unreadable or (record is not None and record.opted_out)

    def apply(self, changes: Iterable[Change[NumberOptOut]]) -> None:
        """Records of the topic, in offset order (a tombstone forgets the number)."""
        for change in changes:
            key = change.key
            if key is None:
                continue
            self._unreadable.discard(key)
            if change.unreadable:
                self._unreadable.add(key)
            elif change.value is None:
                self._latest.pop(key, None)
            else:
                self._latest[key] = change.value

    async def start(self, partitions: int) -> None:
        """Read all ``partitions`` of the topic from the beginning, then follow it."""
        await self.view.start(range(partitions))

    async def stop(self) -> None:
        await self.view.stop()

    async def caught_up(self, timeout_s: float) -> bool:
        """True once everything on the topic as of now is in the view; False past the timeout
        (or when the view is not running): then the caller cannot prove a number is clear."""
        return await self.view.caught_up(timeout_s)


@functools.lru_cache(maxsize=65536)  # murmur2 is pure Python; keys repeat (a contact's outputs)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as every client here) gives a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
