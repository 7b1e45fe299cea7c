"""Revising a workflow while contacts wait inside it (issue 10, "Workflow edits")."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schemas.contacts import ContactChange
from schemas.topics import CONTACT_CHANGES
from tests.e2e.definitions import SUBSCRIBE, account, message, workflow
from tests.e2e.stack import DevStack
from tests.support import produce

pytestmark = pytest.mark.e2e

ACCOUNT = "edits"
CONTACTS = 50
DELAY_S = 20


def edit_message(message_id: str) -> str:
    return message(ACCOUNT, message_id, f"Edit {message_id}")


def edit_flow(*sends_before_a: str) -> str:
    inserted = "".join(f"    - {{type: send_sms, message: {m}}}\n" for m in sends_before_a)
    return workflow(
        ACCOUNT,
        "edit-flow",
        "{property: edit_test, operator: eq, value: go}",
        f"""{SUBSCRIBE}{inserted}    - {{type: send_sms, message: a}}
    - {{type: delay, seconds: {DELAY_S}}}
    - {{type: send_sms, message: b}}
""",
    )


def number(n: int) -> str:
    return f"+35840555{n:04d}"  # a range no other end-to-end test sends to


def bodies(stack: DevStack) -> Counter[tuple[str, str]]:
    """(number, message) -> how many times the gateway accepted it, for this test's numbers
    and messages (other tests of the session may text the same numbers)."""
    ours = {number(n) for n in range(CONTACTS)}
    return Counter(
        (m["to"], str(m["body"]).removeprefix("Edit ").split()[0])
        for m in stack.gateway_messages()
        if m["to"] in ours and str(m["body"]).startswith("Edit ")
    )


def count_of(stack: DevStack, message_id: str) -> int:
    return sum(c for (_, m), c in bodies(stack).items() if m == message_id)


def test_inserting_actions_before_waiting_contacts_sends_nothing_twice_and_nothing_new(
    stack: DevStack, tmp_path: Path
) -> None:
    documents = [account(ACCOUNT), *(edit_message(m) for m in "abyz")]
    applied = stack.apply(tmp_path, "---".join([*documents, edit_flow()]))
    assert applied.returncode == 0, applied.stderr
    produce(
        stack.settings,
        CONTACT_CHANGES,
        [
            ContactChange(
                account_id=ACCOUNT,
                contact_id=f"edit-{n}",
                properties={"mobilephone": number(n), "edit_test": "go"},
            )
            for n in range(CONTACTS)
        ],
    )
    stack.wait(lambda: count_of(stack, "a") >= CONTACTS, f"{CONTACTS} A messages", 120)
    started_waiting = time.monotonic()
    assert count_of(stack, "b") == 0, "the revision must land while the contacts wait"

    revised = stack.apply(tmp_path, "---".join([*documents, edit_flow("y", "z")]), "rev.yaml")
    assert revised.returncode == 0, revised.stderr
    assert "edit-flow configured (revision 2)" in revised.stdout
    assert count_of(stack, "b") == 0, "the revision must land while the contacts wait"

    stack.wait(lambda: count_of(stack, "b") >= CONTACTS, f"{CONTACTS} B messages", 120)
    assert time.monotonic() - started_waiting >= DELAY_S - 5
    time.sleep(5)  # anything sent twice would arrive about now
    received = bodies(stack)
    expected: Counter[Any] = Counter()
    for n in range(CONTACTS):
        expected[(number(n), "a")] = 1
        expected[(number(n), "b")] = 1
    assert received == expected
