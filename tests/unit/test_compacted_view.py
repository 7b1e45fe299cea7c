"""A compacted topic tailed into a view, on an in-memory topic: read from the beginning,
decoded, own writes skipped by header, unreadable records logged and marked; ``barrier`` /
``caught_up`` wait (woken by the tail) for what was written before the call, and prove
nothing once the tail has stopped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.sms import NumberOptOut, OptOutSource
from services.common.codec import encode
from services.common.compacted_view import READER_OPTIONS, Change, CompactedView, ViewStopped
from tests.unit.pipeline_fakes import record

TOPIC = "t.opt-outs"
OWN = ("smsflow-writer", b"me")
ONE, TWO, OWN_WRITE, BAD = (f"+1415555010{n}" for n in range(1, 5))


def opt_out(number: str, opted_out: bool = True) -> bytes:
    return encode(
        NumberOptOut(
            account_id="acme", number=number, opted_out=opted_out, source=OptOutSource.REPLY
        )
    )


class MemoryTopic:
    """The partitions of one topic and the clients reading it (one fetch at a time, like
    aiokafka's: a position moves when ``getmany`` returns the records before it)."""

    def __init__(self, partitions: int) -> None:
        self.records: list[list[ConsumerRecord[bytes, bytes]]] = [[] for _ in range(partitions)]
        self.clients: list[MemoryClient] = []
        self.written = asyncio.Event()

    def write(
        self, partition: int, key: str, value: bytes | None, headers: tuple[Any, ...] = ()
    ) -> None:
        log = self.records[partition]
        log.append(record(TOPIC, len(log), value, key.encode(), partition, headers))
        self.written.set()

    def client(self, **options: Any) -> MemoryClient:
        client = MemoryClient(self, options)
        self.clients.append(client)
        return client


class MemoryClient:
    def __init__(self, topic: MemoryTopic, options: dict[str, Any]) -> None:
        self.topic = topic
        self.options = options
        self.positions: dict[TopicPartition, int] = {}
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, -1)  # unknown until a seek

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.topic.records[tp.partition]) for tp in partitions}

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if not self._pending():
            self.topic.written.clear()
            try:
                await asyncio.wait_for(self.topic.written.wait(), timeout_ms / 1000)
            except TimeoutError:
                return {}
        out = {}
        for tp, position in self._pending().items():
            out[tp] = self.topic.records[tp.partition][position : position + max_records]
            self.positions[tp] = position + len(out[tp])
        return out

    def _pending(self) -> dict[TopicPartition, int]:
        return {
            tp: at
            for tp, at in self.positions.items()
            if at < len(self.topic.records[tp.partition])
        }


class Applied:
    def __init__(self) -> None:
        self.changes: list[Change[NumberOptOut]] = []
        self.fail: Exception | None = None

    def __call__(self, changes: list[Change[NumberOptOut]]) -> None:
        if self.fail is not None:
            raise self.fail
        self.changes += changes


def view_of(
    topic: MemoryTopic, applied: Applied, skip_header: tuple[str, bytes] | None = None
) -> CompactedView[NumberOptOut]:
    return CompactedView(
        TOPIC, {"bootstrap_servers": ["kafka:9092"]}, NumberOptOut, applied,
        skip_header=skip_header, make_client=topic.client,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_reads_from_the_beginning_decoding_skipping_own_writes_and_marking_bad_ones() -> None:
    topic, applied = MemoryTopic(2), Applied()
    topic.write(0, f"acme:{ONE}", opt_out(ONE))
    topic.write(1, f"acme:{TWO}", opt_out(TWO))
    topic.write(1, f"acme:{OWN_WRITE}", opt_out(OWN_WRITE), headers=(OWN,))  # written here
    topic.write(1, f"acme:{BAD}", b"{not json")
    topic.write(0, f"acme:{ONE}", None)  # a tombstone
    view = view_of(topic, applied, skip_header=OWN)
    with structlog.testing.capture_logs() as logs:
        await view.start({0, 1})
        await asyncio.wait_for(view.loaded.wait(), 2)
    by_partition = {
        p: [(c.key, c.value and c.value.number, c.unreadable) for c in applied.changes
            if c.partition == p]
        for p in (0, 1)
    }  # fmt: skip
    assert by_partition == {
        0: [(f"acme:{ONE}", ONE, False), (f"acme:{ONE}", None, False)],
        1: [(f"acme:{TWO}", TWO, False), (f"acme:{BAD}", None, True)],
    }
    assert view.read == 5  # the skipped record was read, not applied
    rejected = [e for e in logs if e["event"] == "record_rejected"]
    assert [e["where"] for e in rejected] == [f"{TOPIC}[1]@2"]
    assert BAD not in str(rejected)  # the key (a phone number) is not logged
    # Both clients read without a group and only committed records.
    assert [c.options["group_id"] for c in topic.clients] == [None, None]
    assert all(c.options.items() >= READER_OPTIONS.items() for c in topic.clients)
    await view.stop()
    assert all(c.stopped for c in topic.clients)


@pytest.mark.asyncio
async def test_a_barrier_waits_for_what_was_written_before_it_in_the_partitions_asked() -> None:
    topic, applied = MemoryTopic(2), Applied()
    view = view_of(topic, applied)
    await view.start(range(2))
    await asyncio.wait_for(view.barrier(), 1)  # an empty topic: nothing to wait for
    ends = topic.clients[1].end_offsets

    async def partition_0_never_reached(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: (10**9 if tp.partition == 0 else end) for tp, end in (await ends(tps)).items()}

    topic.clients[1].end_offsets = partition_0_never_reached  # type: ignore[method-assign]
    topic.write(1, f"acme:{TWO}", opt_out(TWO))
    await asyncio.wait_for(view.barrier({1}), 1)
    assert [c.key for c in applied.changes] == [f"acme:{TWO}"]  # applied before it returned
    assert await view.caught_up(1, partitions=[1])
    assert not await view.caught_up(0.1)  # partition 0 is asked for too
    await view.stop()


@pytest.mark.asyncio
async def test_caught_up_is_false_past_its_timeout() -> None:
    topic, applied = MemoryTopic(1), Applied()
    view = view_of(topic, applied)
    await view.start([0])
    topic.clients[1].end_offsets = _never_reached  # type: ignore[method-assign]
    assert not await view.caught_up(0.1)
    await view.stop()


async def _never_reached(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    return dict.fromkeys(partitions, 10**9)


@pytest.mark.asyncio
async def test_a_view_not_running_proves_nothing_and_a_crash_is_told() -> None:
    topic, applied = MemoryTopic(1), Applied()
    view = view_of(topic, applied)
    with pytest.raises(ViewStopped):
        await view.barrier()  # not started
    assert not await view.caught_up(1)
    crashes: list[BaseException] = []
    view.on_crash = crashes.append
    await view.start([0])
    await view.barrier()
    topic.clients[1].end_offsets = _never_reached  # type: ignore[method-assign]
    waiting = asyncio.create_task(view.barrier())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    applied.fail = RuntimeError("a view that cannot apply")
    topic.write(0, f"acme:{ONE}", opt_out(ONE))
    with pytest.raises(ViewStopped):  # the waiter is woken by the crash, not left hanging
        await asyncio.wait_for(waiting, 1)
    assert [str(e) for e in crashes] == ["a view that cannot apply"]
    assert not await view.caught_up(1)
    await view.stop()
    with pytest.raises(ViewStopped):
        await view.barrier()
