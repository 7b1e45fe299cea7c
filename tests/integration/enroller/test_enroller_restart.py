"""Crashes (SIGKILL) of the enroller: no step lost, no step doubled."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.actions import ActionCommand
from schemas.contacts import ContactChange
from schemas.enrollment import EnrollmentEvent
from schemas.topics import ACTIONS, CONTACT_CHANGES, ENROLLMENT_EVENTS
from services.common.settings import KafkaSettings
from tests.documents import (
    SEND,
    SUBSCRIBE,
    account_and_message,
    delay,
    eq,
    publish_definitions,
    workflow,
)
from tests.harness import OpenTail, StartService
from tests.integration.enroller.process import EnrollerProcess, answer, emit
from tests.support import fresh_settings, produce
from tests.tail import Tail

pytestmark = pytest.mark.integration

DELAY_S = 5
RESTART = workflow(
    "restart-flow", eq("lifecyclestage", "customer"), [SUBSCRIBE, delay(DELAY_S), SEND]
)
# Short heartbeats: the killed instance's partitions come back to its successor quickly.
FAST_FAILOVER = {"SMSFLOW_ENROLLER_SESSION_TIMEOUT_S": "6"}


@dataclass
class Crashable:
    settings: KafkaSettings
    enroller: EnrollerProcess
    actions: Tail[ActionCommand]
    events: Tail[EnrollmentEvent]

    def restart(self) -> None:
        self.enroller.restart(kill=True)

    def steps(self, contact: str, step: int) -> list[ActionCommand]:
        return [c for c in self.actions.poll() if c.contact_id == contact and c.step == step]

    def wait_step(self, contact: str, step: int, timeout_s: float = 60.0) -> ActionCommand:
        found: list[ActionCommand] = self.actions.wait(
            lambda _: self.steps(contact, step), timeout_s, what=f"step {step} of {contact}"
        )
        return found[0]

    def completions(self, contact: str) -> list[EnrollmentEvent]:
        return [
            e for e in self.events.poll() if e.contact_id == contact and e.decision == "completed"
        ]


@pytest.fixture(scope="module")
def crashable(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    module_service: StartService,
    module_tail: OpenTail,
) -> Crashable:
    settings = fresh_settings(kafka_bootstrap)
    publish_definitions(settings, [*account_and_message(), RESTART])
    data_dir = tmp_path_factory.mktemp("enroller-restart")
    return Crashable(
        settings,
        module_service(EnrollerProcess(settings, data_dir, **FAST_FAILOVER)),
        module_tail(settings, ACTIONS, ActionCommand),
        module_tail(settings, ENROLLMENT_EVENTS, EnrollmentEvent),
    )


def test_a_delay_survives_a_crash_of_the_enroller(crashable: Crashable) -> None:
    s = crashable.settings
    emit(s, "delay-1", lifecyclestage="customer")
    answer(s, crashable.wait_step("delay-1", 0))
    entered = time.monotonic()  # the delay starts about now
    time.sleep(1.5)  # the state (now inside the delay) reaches the changelog
    crashable.restart()

    sms = crashable.wait_step("delay-1", 2)
    assert time.monotonic() - entered >= DELAY_S - 1.0
    crashable.actions.settle(2.0)
    assert len(crashable.steps("delay-1", 2)) == 1  # not lost, not doubled
    first = crashable.steps("delay-1", 0)[0]
    assert first.action_id == f"acme/restart-flow/delay-1/1#{first.action.id}"
    answer(s, sms)
    crashable.events.wait(lambda _: crashable.completions("delay-1"), what="completed")
    crashable.events.settle(1.0)
    assert len(crashable.completions("delay-1")) == 1


def test_a_command_lost_in_a_crash_is_sent_again_with_the_same_ids(crashable: Crashable) -> None:
    s = crashable.settings
    emit(s, "lost-1", lifecyclestage="customer")
    first = crashable.wait_step("lost-1", 0)
    crashable.restart()  # while the first action's result is still outstanding

    copies = crashable.actions.wait(
        lambda _: (found := crashable.steps("lost-1", 0)) and len(found) >= 2 and found,
        what="the command sent again",
    )
    assert {(c.action_id, c.event_id, c.attempt) for c in copies} == {
        (first.action_id, first.event_id, 1)
    }
    answer(s, first)  # one result; the copies are answered by nobody
    crashable.wait_step("lost-1", 2, timeout_s=30)
    crashable.actions.settle(2.0)
    assert len(crashable.steps("lost-1", 2)) == 1


def test_the_rocksdb_store_keeps_a_delay_across_a_crash(
    kafka_bootstrap: str, tmp_path: Path, service: StartService, tail: OpenTail
) -> None:
    pytest.importorskip("rocksdict", reason="the optional rocksdb extra is not installed")
    settings = fresh_settings(kafka_bootstrap)
    publish_definitions(settings, [*account_and_message(), RESTART])
    env = {**FAST_FAILOVER, "SMSFLOW_ENROLLER_STORE": "rocksdb://"}
    actions = tail(settings, ACTIONS, ActionCommand)
    enroller = service(EnrollerProcess(settings, tmp_path, **env))
    emit(settings, "rocks-1", lifecyclestage="customer")
    answer(settings, actions.wait(lambda items: [c for c in items if c.step == 0])[0])
    time.sleep(1.5)
    enroller.restart(kill=True)
    actions.wait(lambda items: [c for c in items if c.step == 2], 60, what="step 2")
    actions.settle(1.0)
    assert [c.step for c in actions.items] == [0, 2]
    assert (tmp_path / "enroller").is_dir()


def test_a_kill_9_in_the_middle_of_a_batch_loses_no_step_and_decides_none_twice(
    kafka_bootstrap: str, tmp_path: Path, service: StartService, tail: OpenTail
) -> None:
    settings = fresh_settings(kafka_bootstrap)
    publish_definitions(settings, [*account_and_message(), RESTART])
    actions = tail(settings, ACTIONS, ActionCommand)
    events = tail(settings, ENROLLMENT_EVENTS, EnrollmentEvent)
    # The second batch dies with its outputs acknowledged, its state and offsets unwritten.
    crashing = {**FAST_FAILOVER, "SMSFLOW_INJECT_CRASH_AFTER_OUTPUTS": "2"}
    enroller = service(EnrollerProcess(settings, tmp_path, **crashing))
    contacts = [f"batch-{i:03d}" for i in range(40)]
    produce(
        settings,
        CONTACT_CHANGES,
        [
            ContactChange(
                account_id="acme", contact_id=c, properties={"lifecyclestage": "customer"}
            )
            for c in contacts
        ],
    )
    assert enroller.process is not None
    enroller.process.wait(timeout=60)
    assert enroller.process.returncode == -9, enroller.output()
    assert "crash_injected" in enroller.output(tail=None)
    out_before_restart = len(actions.poll())
    assert out_before_restart > 0  # the crashed batch's commands are on the topic

    enroller.env.pop("SMSFLOW_INJECT_CRASH_AFTER_OUTPUTS")
    enroller.start()
    actions.wait(
        lambda items: {c.contact_id for c in items if c.step == 0} >= set(contacts),
        60,
        what="the first step of every contact",
    )
    actions.settle(2.0)
    by_contact: dict[str, set[tuple[str, str]]] = {}
    for command in actions.items:
        by_contact.setdefault(command.contact_id, set()).add((command.action_id, command.event_id))
    # One decision per contact: the replayed batch re-emitted identical copies.
    assert {c: len(ids) for c, ids in by_contact.items()} == dict.fromkeys(contacts, 1)
    assert len(actions.items) > len(contacts)  # the crashed batch was replayed, not skipped
    enrolled: dict[str, set[str]] = {}
    for event in events.poll():
        if event.decision == "enrolled":
            enrolled.setdefault(event.contact_id, set()).add(event.event_id)
    assert {c: len(ids) for c, ids in enrolled.items()} == dict.fromkeys(contacts, 1)
