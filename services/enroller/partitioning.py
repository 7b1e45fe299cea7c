"""Which partition a contact key lives on.

The contacts' states are partitioned with Kafka's default partitioner, exactly like the
producers of the source topics, so a contact's state sits on the partition of its records
whichever task writes it.
"""

from __future__ import annotations

from services.common.number_opt_outs import partition_of as partition_of_bytes


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    return partition_of_bytes(key.encode(), partitions)


def key_on(partition: int, partitions: int, prefix: str = "partition") -> str:
    """A key the default partitioner puts on ``partition`` (for per-partition records)."""
    return next(
        candidate
        for candidate in (f"{prefix}-{partition}-{n}" for n in range(1_000_000))
        if partition_of(candidate, partitions) == partition
    )
