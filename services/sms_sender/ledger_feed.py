"""Tails the whole ``sms-ledger`` topic in a thread: rebuilds the ledger at start-up and
keeps it current with what other senders write (own writes are skipped by header).

``barrier(partitions)`` returns an event set once the feed has read those partitions up to
their end offsets as of the call: after it, every entry written before is applied.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from schemas.ledger import SmsLedgerEntry
from schemas.topics import SMS_LEDGER
from services.common.codec import DecodeError, decode
from services.common.kafka import make_consumer
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.sms_sender.publisher import WRITER_HEADER

log = get_logger("sms_sender")

Deliver = Callable[[list[tuple[SmsLedgerEntry, int]]], None]


class LedgerFeed:
    def __init__(self, settings: KafkaSettings, writer: str, deliver: Deliver) -> None:
        self.settings = settings
        self.writer = writer.encode()
        self.deliver = deliver
        self.read = 0
        self._asks: queue.SimpleQueue[tuple[set[int] | None, threading.Event]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-feed", daemon=True)

    def start(self) -> LedgerFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def barrier(self, partitions: set[int] | None = None) -> threading.Event:
        """An event set once ``partitions`` (None: all) are read to their current end."""
        reached = threading.Event()
        self._asks.put((partitions, reached))
        return reached

    def _run(self) -> None:
        topic = self.settings.topic(SMS_LEDGER)
        consumer = make_consumer(self.settings, group_id=None)
        try:
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            waiting: list[tuple[dict[TopicPartition, int], threading.Event]] = []
            while not self._stop.is_set():
                while not self._asks.empty():
                    wanted, reached = self._asks.get()
                    chosen = [tp for tp in partitions if wanted is None or tp.partition in wanted]
                    waiting.append((consumer.end_offsets(chosen), reached))
                self._poll(consumer)
                for ends, reached in list(waiting):
                    if all(consumer.position(tp) >= end for tp, end in ends.items()):
                        reached.set()
                        waiting.remove((ends, reached))
        except Exception as exc:  # the service notices: barriers are never reached
            log.error("ledger_feed_crashed", error=repr(exc))
            raise
        finally:
            consumer.close()

    def _poll(self, consumer: KafkaConsumer) -> None:
        batch: list[tuple[SmsLedgerEntry, int]] = []
        for tp, records in consumer.poll(timeout_ms=50).items():
            for record in records:
                self.read += 1
                if any(k == WRITER_HEADER and v == self.writer for k, v in record.headers or ()):
                    continue  # written by this process: already applied
                try:
                    batch.append((decode(SmsLedgerEntry, record.value), tp.partition))
                except DecodeError as exc:
                    log.warning(
                        "ledger_entry_rejected",
                        where=f"{tp.topic}[{tp.partition}]@{record.offset}",
                        reason=exc.reason,
                    )
        if batch:
            self.deliver(batch)
