"""The dashboard's Kafka edge: threads that fold the topics into ``DashboardState``.

One consumer reads ``sms-status``, ``enrollment-events`` and ``dead-letters`` from the
beginning without a group (it commits nothing; a restart rebuilds the same state). Another
thread asks the broker every few seconds how far each service's consumer group is behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from schemas.dead_letters import DeadLetter
from schemas.enrollment import EnrollmentEvent
from schemas.sms import SmsStatusEvent
from schemas.topics import DEAD_LETTERS, ENROLLMENT_EVENTS, SMS_STATUS
from services.common.codec import DecodeError, decode
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.control.dashboard.state import DashboardState
from services.control.kafka import make_admin

log = get_logger(__name__)

SERVICES = ("enroller", "action-runner", "sms-sender")
LAG_EVERY_S = 3.0


class Feed:
    def __init__(self, settings: KafkaSettings, state: DashboardState, lock: threading.Lock):
        self.settings = settings
        self.state = state
        self.lock = lock
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        topic = settings.topic
        self._handlers: dict[str, Callable[[bytes | None], None]] = {
            topic(SMS_STATUS): lambda v: state.add_status(decode(SmsStatusEvent, v)),
            topic(ENROLLMENT_EVENTS): lambda v: state.add_enrollment(decode(EnrollmentEvent, v)),
            topic(DEAD_LETTERS): lambda v: state.add_dead_letter(decode(DeadLetter, v)),
        }
        self._threads = [
            threading.Thread(target=self._read, name="dashboard-feed", daemon=True),
            threading.Thread(target=self._watch_lag, name="dashboard-lag", daemon=True),
        ]

    def start(self) -> Feed:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------ topics

    def _read(self) -> None:
        # kafka-python reconnects by itself while polling; anything else is a bug to see.
        try:
            self._consume()
        except Exception:
            log.exception("dashboard_feed_failed")
            raise

    def _consume(self) -> None:
        consumer = KafkaConsumer(
            **self.settings.client_config(),
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=2000,
        )
        try:
            partitions = self._wait_for_partitions(consumer)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                with self.lock:  # one batch at a time: the page never sees half of one
                    for tp, records in batch.items():
                        handle = self._handlers[tp.topic]
                        for record in records:
                            try:
                                handle(record.value)
                            except DecodeError:
                                continue  # the services dead-letter bad records; not ours
                if not self.caught_up.is_set() and all(
                    consumer.position(tp) >= end[tp] for tp in partitions
                ):
                    self.caught_up.set()
        finally:
            consumer.close()

    def _wait_for_partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        while True:
            partitions = [
                TopicPartition(topic, p)
                for topic in self._handlers
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            if len({tp.topic for tp in partitions}) == len(self._handlers):
                return partitions
            if self._stop.wait(1.0):
                return partitions

    # ------------------------------------------------------------ consumer lag

    def _watch_lag(self) -> None:
        admin = consumer = None
        while not self._stop.is_set():
            try:
                if admin is None or consumer is None:
                    admin = make_admin(self.settings)
                    consumer = KafkaConsumer(**self.settings.client_config())
                lag = group_lag(admin, consumer, self.settings.topic_prefix)
                with self.lock:
                    self.state.set_lag(lag)
            except Exception as exc:  # the page shows the last known lag meanwhile
                log.warning("dashboard_lag_failed", error=str(exc))
                for client in (admin, consumer):
                    if client is not None:
                        client.close()
                admin = consumer = None
            self._stop.wait(LAG_EVERY_S)
        for client in (admin, consumer):
            if client is not None:
                client.close()


def group_lag(admin: KafkaAdminClient, consumer: KafkaConsumer, prefix: str) -> dict[str, int]:
    """Records not yet consumed, per service: end offsets minus the group's commits."""
    groups = {f"{prefix}{service}": service for service in SERVICES}
    committed = admin.list_group_offsets(dict.fromkeys(groups))
    lag: dict[str, int] = {}
    for group, offsets in committed.items():
        # Only this deployment's topics (a group may have committed offsets of others).
        mine = {tp: meta for tp, meta in offsets.items() if tp.topic.startswith(prefix)}
        if not mine:
            continue
        end = consumer.end_offsets(list(mine))
        lag[groups[group]] = sum(max(0, end[tp] - meta.offset) for tp, meta in mine.items())
    return lag
