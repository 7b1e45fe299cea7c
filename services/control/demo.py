"""``make demo``: the whole stack on this machine, the examples applied, the story played.

Starts the stack (``smsflow dev up``), applies ``examples/``, publishes the contacts of
``examples/contacts/demo-contacts.yaml`` the way an upstream CRM would, sends a STOP reply
through the gateway simulator, waits for every SMS's outcome, prints the status table and
what the gateway received, and stops the stack it started (its data removed). With
``--keep`` it leaves the stack running and ends by printing the dashboard's address.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
from kafka import KafkaConsumer, TopicPartition

from schemas.contacts import ContactChange
from schemas.definitions import SendingWindow
from schemas.sms import SmsStatusEvent
from schemas.subscriptions import SubscriptionChange, SubscriptionStatus
from schemas.topics import CONTACT_CHANGES, SMS_STATUS, SUBSCRIPTION_CHANGES
from services.common.codec import DecodeError, decode
from services.common.masking import mask_phone
from services.control.apply import apply_paths
from services.control.console import quiet_logs
from services.control.dev import Stack, StackError
from services.control.kafka import make_producer, send_model
from services.control.stack import StackSettings
from services.control.status_table import LatestStatuses, render
from services.control.story import (
    Progress,
    Story,
    StoryContact,
    held_by_windows,
    index_latest,
    load_story,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STORY = EXAMPLES / "contacts" / "demo-contacts.yaml"
WAIT_S = 90.0


class Watcher:
    """Reads ``sms-status`` and ``subscription-changes`` from the start, without a group."""

    def __init__(self, settings: StackSettings) -> None:
        self.statuses = LatestStatuses()
        self.unsubscribed: set[str] = set()
        self._status_topic = settings.topic(SMS_STATUS)
        self._consumer = KafkaConsumer(**settings.client_config(), enable_auto_commit=False)
        topics = (self._status_topic, settings.topic(SUBSCRIPTION_CHANGES))
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in self._consumer.partitions_for_topic(t) or ()
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)

    def poll(self) -> None:
        for tp, records in self._consumer.poll(timeout_ms=300).items():
            for record in records:
                try:
                    if tp.topic == self._status_topic:
                        self.statuses.add(decode(SmsStatusEvent, record.value))
                    else:
                        change = decode(SubscriptionChange, record.value)
                        if change.status is SubscriptionStatus.UNSUBSCRIBED:
                            self.unsubscribed.add(change.contact_id)
                except DecodeError:
                    continue  # not ours to judge here; the services dead-letter bad records

    def close(self) -> None:
        self._consumer.close()


def e164(number: str, region: str) -> str:
    parsed = phonenumbers.parse(number, region)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def post_json(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def gateway_messages(gateway_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{gateway_url}/_sim/messages", timeout=10) as response:
        messages: list[dict[str, Any]] = json.load(response)
    return messages


def play(settings: StackSettings, story: Story, sender: str, region: str) -> bool:
    """Publish, reply, wait; prints progress. True when every expectation was met."""
    producer = make_producer(settings)
    topic = settings.topic(CONTACT_CHANGES)

    def publish(contact: StoryContact, properties: dict[str, Any]) -> None:
        change = ContactChange(
            account_id=story.account, contact_id=contact.id, properties=properties
        )
        send_model(producer, topic, change).get(timeout=30)

    watcher = Watcher(settings)
    progress = Progress(story, held=held_by_windows(story, _windows(), datetime.now(UTC)))
    for contact_id, workflow_id in sorted(progress.held):
        print(f"  {contact_id} {workflow_id}: sending window closed now, so it waits", flush=True)
    try:
        for contact in story.contacts:
            publish(contact, contact.properties)
            print(f"  published contact {contact.id}: {contact.story}", flush=True)
        began, shown, last_print = time.monotonic(), "", 0.0
        while time.monotonic() - began < WAIT_S:
            watcher.poll()
            latest = index_latest(watcher.statuses.rows())
            for contact in story.contacts:
                if progress.reply_due(contact, latest) and contact.reply:
                    number = str(
                        contact.properties.get("mobilephone") or contact.properties["phone"]
                    )
                    post_json(
                        f"{settings.gateway_url}/_sim/inbound",
                        {"from": e164(number, region), "to": sender, "body": contact.reply},
                    )
                    progress.replied.add(contact.id)
                    print(f"  contact {contact.id} replied {contact.reply!r}", flush=True)
                if (
                    contact.id in progress.replied
                    and contact.id not in progress.followed_up
                    and contact.id in watcher.unsubscribed
                    and contact.then
                ):
                    publish(contact, contact.then)
                    progress.followed_up.add(contact.id)
                    print(f"  contact {contact.id} opted out; published {contact.then}", flush=True)
            summary = progress.summary(latest)
            now = time.monotonic()
            if summary != shown or now - last_print > 5:
                print(f"  {summary} ({now - began:.0f}s)", flush=True)
                shown, last_print = summary, now
            if all(progress.settled(c, latest) for c in story.contacts):
                break
        latest = index_latest(watcher.statuses.rows())
        print("\n4/4 results\n\nSMS statuses (smsflow status):\n")
        print(render(watcher.statuses.rows()))
        verdicts = progress.verdicts(latest)
        print("\nexpected outcomes:")
        for contact, expectation, met in verdicts:
            mark = "ok  " if met else "MISS"
            reason = f" ({expectation.reason})" if expectation.reason else ""
            if progress.is_held(contact, expectation):
                reason += ", or waiting for its sending window"
            print(f"  {mark} {contact.id} {expectation.workflow}: {expectation.status}{reason}")
        return all(met for _, _, met in verdicts)
    finally:
        watcher.close()
        producer.close()


def show_gateway(settings: StackSettings) -> None:
    messages = gateway_messages(settings.gateway_url)
    print(f"\nwhat the gateway received ({len(messages)} messages, GET /_sim/messages):\n")
    for message in messages:
        body = message["body"].replace("\n", " / ")
        print(f"  to {mask_phone(message['to'])}  key {str(message['idempotency_key'])[:16]}…")
        print(f"     {body}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    keep = "--keep" in args
    quiet_logs("demo")
    settings = StackSettings.from_environ(os.environ)
    if settings.external_broker and not os.environ.get("SMSFLOW_TOPIC_PREFIX"):
        # Topics on a broker we do not own may hold an earlier run: use fresh ones.
        prefix = f"smsflow-demo-{int(time.time())}."
        settings = settings.model_copy(update={"topic_prefix": prefix})
    stack = Stack(settings, say=lambda text: print(text, flush=True))
    if any(state not in ("stopped", "external") for _, _, state, _ in stack.status()):
        print(
            f"demo: a stack is already running in {settings.state_dir}; the demo needs a fresh "
            "one: run `.venv/bin/smsflow dev down --purge` first",
            file=sys.stderr,
        )
        return 1
    stack.purge_data()  # leftovers of an earlier run would change the story
    story = load_story(STORY)
    print("1/4 starting the stack (smsflow dev up)", flush=True)
    ok = False
    try:
        stack.up()
        print(f"\n2/4 applying {EXAMPLES.name}/ (smsflow apply -f examples/)", flush=True)
        if apply_paths(settings, [EXAMPLES]) != 0:
            return 1
        account = next(d for d in _account_documents() if d["metadata"]["id"] == story.account)
        sender, region = account["spec"]["sender"], account["spec"].get("default_region", "US")
        print(f"\n3/4 publishing {len(story.contacts)} contact changes", flush=True)
        ok = play(settings, story, sender, region)
        show_gateway(settings)
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            print("stopping the stack (smsflow dev down --purge)", flush=True)
            stack.down(purge=True)
    if ok:
        print("\nevery SMS ended as expected")
    else:
        print(
            f"\nsome SMS did not end as expected; the services' logs are kept in "
            f"{stack.table.logs_dir} (one JSON line per handled record)"
        )
    if keep:
        print(
            "\nthe stack keeps running (stop it with `.venv/bin/smsflow dev down --purge`)"
            f"\ndashboard: {settings.dashboard_url}"
        )
    return 0 if ok else 1


def _example_documents(kind: str) -> list[dict[str, Any]]:
    import yaml

    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return docs


def _account_documents() -> list[dict[str, Any]]:
    return _example_documents("Account")


def _windows() -> dict[str, SendingWindow]:
    """The example workflows' sending windows, by workflow id."""
    return {
        d["metadata"]["id"]: SendingWindow.model_validate(d["spec"]["sending_window"])
        for d in _example_documents("Workflow")
        if d["spec"].get("sending_window")
    }


if __name__ == "__main__":
    raise SystemExit(main())
