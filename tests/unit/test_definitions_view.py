"""The definitions on the event loop, on an in-memory topic: every partition read from the
beginning into the catalog (tombstones remove, unreadable records are skipped), the listener
told after each change; a broker outage does not end the view, and while the broker is away
``caught_up`` says False. The synchronous feed applies records by the same rules."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import structlog
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord as SyncRecord
from kafka.structs import TopicPartition as SyncPartition

from schemas.definitions import DefinitionApplied
from services.common.catalog import Catalog
from services.common.codec import encode
from services.common.compacted_view import Change
from services.common.definitions_view import CatalogUpdates, DefinitionsView
from services.common.settings import KafkaSettings
from services.control.definitions_feed import DefinitionsFeed
from tests.documents import account, message
from tests.unit.test_compacted_view import MemoryClient, MemoryTopic

ACCOUNT = DefinitionApplied.model_validate({"document": account("acme"), "revision": 2})
MESSAGE = DefinitionApplied.model_validate({"document": message("welcome")})
SETTINGS = KafkaSettings(kafka_bootstrap_servers="kafka:9092", topic_prefix="t.")


class Topic(MemoryTopic):
    """The in-memory topic whose clients also know its partitions, and whose fetches can be
    made to fail (the broker away)."""

    def __init__(self, partitions: int) -> None:
        super().__init__(partitions)
        self.fetches_fail = self.offsets_fail = False

    def away(self, away: bool = True) -> None:
        self.fetches_fail = self.offsets_fail = away

    def client(self, **options: Any) -> MemoryClient:
        client = Client(self, options)
        self.clients.append(client)
        return client


class Client(MemoryClient):
    topic: Topic

    def partitions_for_topic(self, name: str) -> set[int]:
        return set(range(len(self.topic.records)))

    async def getmany(self, timeout_ms: int, max_records: int) -> Any:
        if self.topic.fetches_fail:
            await asyncio.sleep(0.01)
            raise KafkaConnectionError("broker away")
        return await super().getmany(timeout_ms, max_records)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.topic.offsets_fail:
            raise KafkaConnectionError("broker away")
        return await super().end_offsets(partitions)


def write(topic: MemoryTopic, partition: int, event: DefinitionApplied | None, key: str) -> None:
    topic.write(partition, key, None if event is None else encode(event))


class Told:
    """A listener that records what it was told and whether the catalog lock was free."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, str]] = []
        self.lock: Any = None
        self.lock_was_free: list[bool] = []

    def __call__(self, event: DefinitionApplied | None, key: str) -> None:
        self.calls.append((None if event is None else event.revision, key))
        self.lock_was_free.append(not self.lock.locked())


def test_updates_apply_remove_and_skip_what_cannot_be_read() -> None:
    told = Told()
    updates = CatalogUpdates(on_change=told)
    told.lock = updates.lock
    with structlog.testing.capture_logs() as logs:
        updates(
            [
                Change(0, ACCOUNT.key, ACCOUNT),
                Change(1, MESSAGE.key, MESSAGE),
                Change(1, MESSAGE.key, None, unreadable=True),  # a bad record: skipped
                Change(0, "not-a-definition-key", None),  # a tombstone for no definition
                Change(0, None, None),
                Change(1, MESSAGE.key, None),  # a tombstone removes
            ]
        )
    assert updates.catalog.account("acme") == ACCOUNT.document
    assert updates.catalog.message("acme", "welcome") is None
    assert updates.catalog.revisions == {ACCOUNT.key: 2}
    assert told.calls == [(2, ACCOUNT.key), (1, MESSAGE.key), (None, MESSAGE.key)]
    assert told.lock_was_free == [True, True, True]  # told after the change, lock released
    assert [e["event"] for e in logs] == ["definition_tombstone_rejected"] * 2


@pytest.mark.asyncio
async def test_the_view_reads_every_partition_from_the_beginning_then_follows() -> None:
    topic = Topic(2)
    write(topic, 0, ACCOUNT, ACCOUNT.key)
    write(topic, 1, MESSAGE, MESSAGE.key)
    topic.write(1, MESSAGE.key, b"{not json")
    catalog, told = Catalog(), Told()
    view = DefinitionsView(SETTINGS, catalog, told, make_client=topic.client)
    told.lock = view.lock
    await view.start(wait_s=2)
    assert view.catalog is catalog
    assert view.loaded.is_set()
    assert set(catalog.revisions) == {ACCOUNT.key, MESSAGE.key}  # the bad record changed nothing
    assert {c.options["group_id"] for c in topic.clients} == {None}
    assert [tp.topic for tp in view.view.partitions] == ["t.definitions"] * 2
    write(topic, 1, None, MESSAGE.key)
    assert await view.caught_up(1)
    assert catalog.message("acme", "welcome") is None
    assert told.calls[-1] == (None, MESSAGE.key)
    await view.stop()
    assert all(c.stopped for c in topic.clients)


@pytest.mark.asyncio
async def test_a_start_that_cannot_read_to_the_end_in_time_fails_and_closes_its_clients() -> None:
    topic = Topic(1)
    write(topic, 0, ACCOUNT, ACCOUNT.key)
    topic.fetches_fail = True  # the end offsets are known, the records never come
    view = DefinitionsView(SETTINGS, make_client=topic.client)
    with pytest.raises(TimeoutError):
        await view.start(wait_s=0.1)
    assert len(topic.clients) == 2
    assert all(c.stopped for c in topic.clients)


@pytest.mark.asyncio
async def test_the_view_rides_out_a_broker_outage_and_is_not_caught_up_meanwhile() -> None:
    topic = Topic(1)
    write(topic, 0, ACCOUNT, ACCOUNT.key)
    view = await DefinitionsView(SETTINGS, make_client=topic.client).start(wait_s=2)
    topic.away()
    with structlog.testing.capture_logs() as logs:
        await asyncio.sleep(0.3)  # a fetch fails meanwhile (after the one under way)
        assert not await view.caught_up(0.5)  # cannot be proved current: fails closed
    assert any(e["event"] == "view_waiting" for e in logs)
    topic.away(False)
    write(topic, 0, MESSAGE, MESSAGE.key)
    assert await view.caught_up(3)  # the same task carries on from its position
    assert view.catalog.message("acme", "welcome") == MESSAGE.document
    await view.stop()


def sync_record(offset: int, key: str, value: bytes | None) -> SyncRecord:
    return SyncRecord(
        topic="t.definitions", partition=0, leader_epoch=0, offset=offset, timestamp=0,
        timestamp_type=0, key=key.encode(), value=value, headers=[], checksum=None,
        serialized_key_size=0, serialized_value_size=0, serialized_header_size=0,
    )  # fmt: skip


class SyncConsumer:
    """kafka-python's side of the feed: one poll answering the records, then nothing."""

    def __init__(self, records: list[tuple[str, bytes | None]]) -> None:
        self.tp = SyncPartition("t.definitions", 0)
        self.records = [sync_record(n, key, value) for n, (key, value) in enumerate(records)]
        self.read = 0

    def poll(self, timeout_ms: int) -> dict[SyncPartition, list[SyncRecord]]:
        batch, self.read = self.records[self.read :], len(self.records)
        return {self.tp: batch} if batch else {}

    def position(self, tp: SyncPartition) -> int:
        return self.read


def test_the_synchronous_feed_applies_records_by_the_same_rules() -> None:
    consumer = SyncConsumer(
        [
            (ACCOUNT.key, encode(ACCOUNT)),
            (MESSAGE.key, encode(MESSAGE)),
            (MESSAGE.key, b"{not json"),  # skipped: the message stays
            ("not-a-definition-key", None),
            (ACCOUNT.key, None),
        ]
    )
    told = Told()
    feed = DefinitionsFeed(SETTINGS, on_change=told)
    told.lock = feed.lock
    with structlog.testing.capture_logs() as logs:
        feed._poll(consumer, [consumer.tp], {consumer.tp: 5})  # type: ignore[arg-type]
    assert feed.wait_caught_up(0)
    assert feed.catalog.revisions == {MESSAGE.key: 1}
    assert told.calls == [(2, ACCOUNT.key), (1, MESSAGE.key), (None, ACCOUNT.key)]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "record_rejected",
        "definition_tombstone_rejected",
    ]
    assert isinstance(feed.lock, type(threading.Lock()))
