"""Which partition a contact key lives on, and table writes made outside a stream.

The contact tables partition by key (``use_partitioner``) with Kafka's default partitioner,
exactly like the producers of the source topics, so a contact's state sits on the
partition of its records whichever task writes it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import faust.streams as faust_streams
from kafka.partitioner.default import murmur2


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def key_on(partition: int, partitions: int, prefix: str = "partition") -> str:
    """A key the default partitioner puts on ``partition`` (for per-partition records)."""
    return next(
        candidate
        for candidate in (f"{prefix}-{partition}-{n}" for n in range(1_000_000))
        if partition_of(candidate, partitions) == partition
    )


class _PartitionStandIn:
    """Just enough of an event for a table write: ``.message.partition``."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic=None)


@contextmanager
def on_partition(partition: int) -> Iterator[None]:
    """Table writes as if for an event of ``partition``.

    faust's RocksDB store files each write under the current event's partition (the memory
    store needs none). Timer work has no event, and a batch writes for many partitions after
    its events were taken, so one is stood in while it writes.
    """
    stand_in = _PartitionStandIn(partition)
    token = faust_streams._current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)
