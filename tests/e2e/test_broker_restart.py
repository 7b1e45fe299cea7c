"""The broker goes away for 30 s in the middle of a run of 500 SMS: every service of the
stack waits and carries on by itself (no process exits, nothing restarts them), and each
contact gets its SMS exactly once.

The stack runs against a broker of this test's own, on free ports with its own state dir,
so stopping it leaves the shared broker (and every other test) alone.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from schemas.contacts import ContactChange
from schemas.topics import CONTACT_CHANGES
from services.control.kafka import make_producer, send_model
from services.control.local_kafka import LocalBroker
from services.control.processes import alive
from tests.e2e.definitions import account
from tests.e2e.stack import SERVICES, DevStack, stack_environment

pytestmark = [
    pytest.mark.e2e,
    # LocalBroker leaves the broker running detached: its Popen handle is dropped on purpose.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

ACCOUNT = "restart"
# Its workflow subscribe-send: subscribe, mark as marketing contact, delay 1 s, send.
COUNT = 500
PACE_PER_S = 12.0  # contact changes published per second
OUTAGE_S = 30
RECOVERY_S = 180
TROUBLE = re.compile(r"Traceback|\berror\b|exception|crash", re.IGNORECASE)


def number(i: int) -> str:
    return f"+35840337{i:04d}"


@pytest.fixture
def stack(own_broker: LocalBroker, tmp_path: Path) -> Iterator[DevStack]:
    with DevStack(stack_environment(own_broker.bootstrap, tmp_path / "stack")) as handle:
        yield handle


class Publisher(threading.Thread):
    """Publishes one contact change after another at a steady pace, each acknowledged before
    the next. The test takes the broker away between two writes (``pause``, under ``gate``);
    the publisher then waits, like any upstream would, and resumes with a new producer (a
    kafka-python client left polling a stopped broker leaks sockets)."""

    def __init__(self, stack: DevStack) -> None:
        super().__init__(name="publisher", daemon=True)
        self.stack = stack
        self.gate = threading.Lock()
        self.broker_up = threading.Event()
        self.broker_up.set()
        self.producer: KafkaProducer | None = None
        self.published = 0
        self.error: BaseException | None = None

    def pause(self) -> None:
        """Call holding ``gate``."""
        self.broker_up.clear()
        self._close()

    def run(self) -> None:
        settings = self.stack.settings
        topic = settings.topic(CONTACT_CHANGES)
        began = time.monotonic()
        try:
            for i in range(COUNT):
                time.sleep(max(0.0, began + i / PACE_PER_S - time.monotonic()))
                self.broker_up.wait()
                with self.gate:
                    if self.producer is None:
                        # One acknowledged write at a time: nothing for idempotence to do.
                        self.producer = make_producer(settings, enable_idempotence=False)
                    send_model(self.producer, topic, change(i))
                    self.producer.flush(timeout=30)
                    self.published += 1
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            with self.gate:
                self._close()

    def _close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=5)
            self.producer = None


def change(i: int) -> ContactChange:
    return ContactChange(
        account_id=ACCOUNT,
        contact_id=f"c{i:04d}",
        properties={"mobilephone": number(i), "lifecyclestage": "customer"},
    )


class Watch:
    """Every service's pid, checked throughout: none may exit."""

    def __init__(self, stack: DevStack) -> None:
        self.pids = {name: stack.services[name].pid() for name in SERVICES}
        self.exited: dict[str, float] = {}
        self.began = time.monotonic()

    def check(self) -> None:
        for name, pid in self.pids.items():
            if name not in self.exited and not alive(pid):
                self.exited[name] = time.monotonic() - self.began


def ready(stack: DevStack, name: str) -> bool:
    return stack.services[name].healthy()


def received(stack: DevStack) -> Counter[str]:
    wanted = {number(i) for i in range(COUNT)}
    try:
        messages = stack.gateway_messages()
    except (urllib.error.URLError, OSError):
        return Counter()
    return Counter(m["to"] for m in messages if m["to"] in wanted)


def trouble(stack: DevStack, lines: int = 12) -> str:
    """The last lines of each log that look like a failure."""
    parts = []
    for name in SERVICES:
        path = stack.state_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        bad = [line[:300] for line in text.splitlines() if TROUBLE.search(line)]
        parts.append(f"--- {name}: {len(bad)} suspicious lines\n" + "\n".join(bad[-lines:]))
    return "\n".join(parts)


def test_every_service_rides_out_a_broker_restart_with_each_sms_sent_once(
    own_broker: LocalBroker, stack: DevStack, tmp_path: Path
) -> None:
    result = stack.apply(tmp_path / "defs", account(ACCOUNT))
    assert result.returncode == 0, result.stderr
    watch = Watch(stack)
    publisher = Publisher(stack)
    publisher.start()

    def until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            watch.check()
            assert watch.exited == {}, f"services exited: {watch.exited}"
            assert publisher.error is None, f"publishing failed: {publisher.error!r}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)

    at_stop = 0
    try:
        until(lambda: sum(received(stack).values()) >= COUNT // 3, 120, "a third of the SMS")
        with publisher.gate:
            publisher.pause()
            at_stop = sum(received(stack).values())
            own_broker.stop()
        outage_end = time.monotonic() + OUTAGE_S
        until(lambda: time.monotonic() >= outage_end, OUTAGE_S + 5, "the outage")
        own_broker.start()
        publisher.broker_up.set()
        until(lambda: len(received(stack)) == COUNT, RECOVERY_S, "every SMS after the restart")
        publisher.join(timeout=10)
        # Room for a late duplicate to show up.
        settle = time.monotonic() + 5
        until(lambda: time.monotonic() >= settle, 10, "late duplicates")
        until(lambda: all(ready(stack, n) for n in SERVICES), 60, "every service ready")
    except AssertionError as exc:
        got = received(stack)
        missing = [f"c{i:04d}" for i in range(COUNT) if number(i) not in got]
        pytest.fail(
            f"{exc}\nexited: {watch.exited}\npublished {publisher.published}/{COUNT}, "
            f"{at_stop} SMS before the stop, {len(got)} contacts reached in all; "
            f"{len(missing)} missing, e.g. {missing[:15]}\n"
            f"not ready: {[n for n in SERVICES if not ready(stack, n)]}\n{trouble(stack)}"
        )
    watch.check()
    got = received(stack)
    assert 0 < at_stop < COUNT  # the broker went away in the middle of the run
    assert watch.exited == {}, f"services exited: {watch.exited}\n{trouble(stack)}"
    assert {n: k for n, k in got.items() if k > 1} == {}  # 0 duplicates
    assert len(got) == COUNT  # 0 lost
