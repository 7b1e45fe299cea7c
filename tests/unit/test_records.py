"""The record pipeline, broker-free: per batch, outputs before state before offsets; later
records see earlier state; bad records are dead-lettered and the partition goes on; a
transient failure holds the partition at that record and keeps what came before."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from services.common.codec import DecodeError
from services.common.errors import PermanentError, TransientError
from services.common.records import Batch, Handled, Handler, partition_of
from services.common.state_store import MemoryStore, RocksStore
from tests.unit.pipeline_fakes import FakeProducer, MemoryPipeline, record

TOPIC = "counts"


class Count(Handler):
    """Adds each record's ``n`` to a running total per key; emits the new total."""

    name = "count"

    def __init__(self) -> None:
        self.transient_at: int | None = None
        self.done_at: list[int] = []

    def decode(self, rec: Any) -> dict[str, Any]:
        try:
            return dict(json.loads(rec.value))
        except ValueError as exc:
            raise DecodeError(f"malformed JSON: {exc}") from exc

    def decide(self, item: Any, rec: Any, batch: Batch, context: Any) -> Handled:
        key = rec.key.decode()
        total = (batch.get("totals", key) or 0) + item["n"]
        batch.put("totals", key, total)  # written before a failure below: rolled back
        batch.emit("totals-out", key, json.dumps({"total": total}).encode())
        if item.get("bad"):
            raise PermanentError("bad on purpose")
        if rec.offset == self.transient_at:
            self.transient_at = None
            raise TransientError("not ready")
        return Handled("counted", {"total": total})

    def done(self, partition: int, next_offset: int) -> None:
        self.done_at.append(next_offset)


def _pipeline() -> tuple[MemoryPipeline, Count]:
    handler = Count()
    return MemoryPipeline({TOPIC: handler}, {"totals": "totals-changelog"}), handler


def _value(n: int, **extra: Any) -> bytes:
    return json.dumps({"n": n, **extra}).encode()


@pytest.mark.asyncio
async def test_a_batch_sends_its_outputs_then_its_state_then_names_the_offset() -> None:
    memory, handler = _pipeline()
    records = [record(TOPIC, offset, _value(n)) for offset, n in enumerate((1, 2, 3))]
    assert await memory.run(records) == 3
    sent = memory.producer.sent
    # Later records saw the earlier ones' state: running totals 1, 3, 6.
    assert [s.json for s in sent if s.topic == "totals-out"] == [
        {"total": 1},
        {"total": 3},
        {"total": 6},
    ]
    # Every output went before the state (one changelog record per key: the last value).
    assert [s.topic for s in sent] == ["totals-out"] * 3 + ["totals-changelog"]
    assert sent[-1].json == 6
    assert sent[-1].partition == 0  # the changelog is partitioned like the input
    assert memory.stored("totals", "k") == 6
    assert handler.done_at == [3]


@pytest.mark.asyncio
async def test_bad_records_are_dead_lettered_with_their_headers_and_the_batch_goes_on() -> None:
    memory, _ = _pipeline()
    replayed = (("smsflow-replayed-from", b"dead-letters[0]@7"),)
    records = [
        record(TOPIC, 0, b"{not json"),
        record(TOPIC, 1, _value(5, bad=True), headers=replayed),
        record(TOPIC, 2, _value(2)),
    ]
    assert await memory.run(records) == 3
    letters = [s.json for s in memory.producer.on("dead-letters")]
    assert [(d["offset"], d["service"], d["topic"]) for d in letters] == [
        (0, "test", TOPIC),
        (1, "test", TOPIC),
    ]
    assert letters[0]["reason"].startswith("malformed JSON")
    assert letters[1]["reason"] == "bad on purpose"
    assert letters[1]["replayed_from"] == "dead-letters[0]@7"
    # The failed record's writes and outputs were rolled back: only the third counted.
    assert [s.json for s in memory.producer.on("totals-out")] == [{"total": 2}]
    assert memory.stored("totals", "k") == 2
    assert memory.metrics.dead == [TOPIC, TOPIC]


@pytest.mark.asyncio
async def test_a_transient_failure_keeps_what_came_before_and_holds_the_rest() -> None:
    memory, handler = _pipeline()
    handler.transient_at = 2
    records = [record(TOPIC, offset, _value(1)) for offset in range(4)]
    assert await memory.run(records) == 2  # offsets 0 and 1 done, 2 and 3 held
    assert memory.stored("totals", "k") == 2
    assert len(memory.producer.on("totals-out")) == 2
    # Retried: the held records are handled in order, none skipped.
    assert await memory.run(records[2:]) == 4
    assert memory.stored("totals", "k") == 4
    assert [s.json for s in memory.producer.on("totals-out")][-1] == {"total": 4}
    assert handler.done_at == [2, 4]


@pytest.mark.asyncio
async def test_a_blocking_handler_holds_on_any_failure() -> None:
    memory, handler = _pipeline()
    handler.blocking = True

    def explode(*args: Any) -> Handled:
        raise RuntimeError("dependency down")

    handler.decide = explode  # type: ignore[method-assign]
    assert await memory.run([record(TOPIC, 0, _value(1))]) is None
    assert memory.producer.sent == []  # not dead-lettered: it is retried, never skipped


def _add(batch: Batch, n: int) -> None:
    """A job's work: what a record of ``n`` would do, with no record behind it."""
    total = (batch.get("totals", "k") or 0) + n
    batch.put("totals", "k", total)
    batch.emit("totals-out", "k", json.dumps({"total": total}).encode())


@pytest.mark.asyncio
async def test_a_job_is_done_like_a_batch_but_commits_no_offset() -> None:
    memory, _ = _pipeline()
    assert await memory.run([record(TOPIC, 0, _value(1))]) == 1
    sent = len(memory.producer.sent)
    assert await memory.pipeline.run_job(0, lambda batch: _add(batch, 10))
    # Its outputs, then its state (acknowledged before run_job returns); no offset to commit.
    assert [(s.topic, s.json) for s in memory.producer.sent[sent:]] == [
        ("totals-out", {"total": 11}),
        ("totals-changelog", 11),
    ]
    assert memory.stored("totals", "k") == 11
    assert memory.pipeline._to_commit == {}


@pytest.mark.asyncio
async def test_a_job_on_a_partition_not_held_does_nothing_and_a_refused_one_writes_nothing() -> (
    None
):
    memory, _ = _pipeline()
    assert not await memory.pipeline.run_job(0, lambda batch: _add(batch, 1))
    assert memory.producer.sent == []
    assert memory.state.partitions == []  # not even an empty store made for it
    assert await memory.run([record(TOPIC, 0, _value(1))]) == 1
    memory.producer.fail = KafkaTimeoutError()
    with pytest.raises(KafkaTimeoutError):
        await memory.pipeline.run_job(0, lambda batch: _add(batch, 5))
    assert memory.stored("totals", "k") == 1


@pytest.mark.asyncio
async def test_unacknowledged_outputs_write_no_state_and_commit_nothing() -> None:
    memory, _ = _pipeline()
    memory.producer.fail = KafkaTimeoutError()
    with pytest.raises(KafkaTimeoutError):
        await memory.run([record(TOPIC, 0, _value(1))])
    assert memory.stored("totals", "k") is None
    assert memory.pipeline._to_commit == {}


def test_keys_are_partitioned_as_kafkas_default_partitioner() -> None:
    # kafka-python (tests, tools, upstream producers) puts a key where the pipeline does.
    from kafka.partitioner.default import murmur2

    for key in (b"acme:1001", b"acme:+358401234567", b"x"):
        assert partition_of(key, 6) == (murmur2(key) & 0x7FFFFFFF) % 6


def test_stores_keep_json_values_and_forget_on_delete(tmp_path: Any) -> None:
    for store in (MemoryStore(), RocksStore(tmp_path / "rocks", cache_mb=1)):
        store.put("a", {"x": [1, 2]})
        store.put("b", 3)
        store.put("b", None)
        assert store.get("a") == {"x": [1, 2]}
        assert store.get("b") is None
        assert dict(store.items()) == {"a": {"x": [1, 2]}}
        store.close()


class Stored(Handler):
    """Writes its record's value to one store and emits it; names that store or all."""

    def __init__(self, name: str, store: str, named: bool = True) -> None:
        self.name, self.store = name, store
        self.stores = (store,) if named else ()

    def decide(self, item: Any, rec: Any, batch: Batch, context: Any) -> Handled:
        batch.put(self.store, rec.key.decode(), json.loads(item))
        batch.emit(f"{self.name}-out", rec.key, item)
        return Handled("stored")


class GatedProducer(FakeProducer):
    """Acknowledges ``gated_topic`` only once ``gate`` is set."""

    def __init__(self, gated_topic: str) -> None:
        super().__init__()
        self.gated_topic = gated_topic
        self.gate = asyncio.Event()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        if topic == self.gated_topic:
            await self.gate.wait()
        return await super().send_batch(batch, topic, partition=partition)


def _two_handlers(named: bool) -> MemoryPipeline:
    handlers = {"a": Stored("a", "left", named), "b": Stored("b", "right", named)}
    memory = MemoryPipeline(handlers, {"left": "left-changelog", "right": "right-changelog"})
    producer = GatedProducer("a-out")
    memory.producer = producer
    memory.pipeline.producer = producer  # type: ignore[assignment]
    memory.pipeline.sender.producer = producer  # type: ignore[assignment]
    return memory


@pytest.mark.asyncio
@pytest.mark.parametrize("named", [True, False])
async def test_a_batch_waits_only_for_batches_of_the_stores_it_names(named: bool) -> None:
    memory = _two_handlers(named)
    waiting = asyncio.create_task(memory.run([record("a", 0, b"1")]))  # its acks held back
    await asyncio.sleep(0.05)
    other = asyncio.create_task(memory.run([record("b", 0, b"2")]))  # same partition
    await asyncio.sleep(0.1)
    # Disjoint stores: the second batch is done while the first still waits for its acks;
    # a handler naming no store holds every store of the partition, so the second waits.
    assert other.done() is named
    memory.producer.gate.set()  # type: ignore[attr-defined]
    assert await waiting == 1
    assert await other == 1
    assert (memory.stored("left", "k"), memory.stored("right", "k")) == (1, 2)


@pytest.mark.asyncio
async def test_a_handler_that_touches_a_store_it_did_not_name_fails_loudly() -> None:
    handler = Stored("a", "left")
    handler.store = "right"  # a bug: it names "left" and writes "right"
    memory = MemoryPipeline({"a": handler}, {"left": "left-changelog", "right": "right-cl"})
    assert await memory.run([record("a", 0, b"1")]) == 1
    [letter] = [s.json for s in memory.producer.on("dead-letters")]
    assert "store right is not among the handler's stores" in letter["reason"]
    assert memory.stored("right", "k") is None
