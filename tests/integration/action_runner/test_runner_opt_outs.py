"""Opt-outs belong to a number (A8), on the real broker: what a STOP or START from a number
does to the sends of every contact that holds it, keyword variants, a STOP that fails to
apply at first, a template driven into a loop by contact data, and no table views."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.actions import ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.sms import InboundSms, OptOutSource
from schemas.topics import CONTACT_CHANGES, SMS_INBOUND
from tests.documents import account, message, workflow
from tests.integration.action_runner.harness import RunnerStack, contact, send
from tests.integration.action_runner.test_runner_flow import started

pytestmark = pytest.mark.integration

# Three nested loops over a contact property: 10^9 steps for a 1,000-character value.
LOOPS = (
    "{% for a in contact.firstname %}{% for b in contact.firstname %}"
    "{% for c in contact.firstname %}x{% endfor %}{% endfor %}{% endfor %}"
)
DOCUMENTS: list[dict[str, Any]] = [
    account(opt_out_keywords=["LOPETA"], opt_in_keywords=["ALOITA"]),
    message(),
    message("loops", body=LOOPS),
    message("repeat", body="{{ contact.firstname * 1000000 }}"),
    workflow(),
]
# The first replies fail to apply (a transient fault): the runner must hold, not skip them.
# Retried 0.1 + 0.5 + 1 + 2 s apart: longer than a send waits for them (the barrier).
INJECTED_FAILURES = 4
BARRIER_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerStack]:
    with started(
        kafka_bootstrap,
        Path(tmp_path_factory.mktemp("runner")),
        documents=DOCUMENTS,
        SMSFLOW_INJECT_REPLY_FAILURES=str(INJECTED_FAILURES),
        SMSFLOW_CONSENT_BARRIER_TIMEOUT_S=str(BARRIER_TIMEOUT_S),
    ) as stack:
        yield stack


class Sends:
    """Numbered sends of one contact (each its own step, so each is decided anew)."""

    def __init__(self, stack: RunnerStack, contact_id: str, props: dict[str, Any]) -> None:
        self.stack, self.contact_id, self.props, self.step = stack, contact_id, props, 10

    def __call__(self, message_id: str = "welcome") -> ActionResult:
        self.step += 1
        return self.stack.run(
            send(self.contact_id, step=self.step, props=self.props, message=message_id)
        )


def test_a_stop_that_fails_to_apply_at_first_still_opts_out_and_no_send_overtakes_it(
    stack: RunnerStack,
) -> None:
    """Runs first in the module: the first replies of this runner fail to apply."""
    number = "+358401120001"
    stack.holds("o-fail", mobilephone=number)
    stack.reply(number, "STOP", "SM-fail-stop")
    # Queued right behind the STOP, while it is still failing to apply: the send waits for
    # it, and past the wait it is deferred, not decided on what may miss the STOP.
    first = stack.run(send("o-fail", props=contact(number)))
    assert (first.outcome, first.reason) == (ActionOutcome.DEFERRED, "consent_pending")
    assert first.retry_at is not None
    [deferred] = stack.statuses_for("o-fail")
    assert (deferred.status.value, deferred.reason) == ("deferred", "consent_pending")
    # The enroller sends it again (a new attempt) until it is decided.
    result, attempt = first, 1
    while result.outcome is ActionOutcome.DEFERRED and attempt < 10:
        attempt += 1
        result = stack.run(send("o-fail", props=contact(number), attempt=attempt), attempt)
    assert (result.outcome, result.reason) == (ActionOutcome.SKIPPED, "opted_out")
    assert stack.requests_for("o-fail") == []
    state = stack.number_state(number, "SM-fail-stop")
    assert (state.opted_out, state.source, state.keyword) == (True, OptOutSource.REPLY, "STOP")
    retried = [
        line
        for line in stack.runner.logged()
        if line.get("event") == "record_retried" and line.get("agent") == "answer_replies"
    ]
    assert len(retried) == INJECTED_FAILURES
    assert all(line["blocking"] for line in retried)
    assert not [d for d in stack.dead_letters.poll() if d.topic.endswith("sms-inbound")]


def test_start_from_a_second_number_does_not_lift_the_first(stack: RunnerStack) -> None:
    first, second = "+358401120002", "+358401120003"
    stack.holds("o-two", mobilephone=first, phone=second)
    sends = Sends(stack, "o-two", contact(first, phone=second))
    assert sends().outcome is ActionOutcome.DONE

    stack.reply(first, "STOP", "SM-two-stop")
    assert stack.number_state(first, "SM-two-stop").opted_out
    assert sends().reason == "opted_out"

    stack.reply(second, "START", "SM-two-start")
    assert not stack.number_state(second, "SM-two-start").opted_out
    stack.reply(first, "YES", "SM-two-yes")  # not an opt-in word out of context
    assert sends().reason == "opted_out"  # the SMS still goes to the first number
    assert not [r for r in stack.opt_outs.poll() if r.provider_message_id == "SM-two-yes"]

    stack.reply(first, "start", "SM-two-start-first")
    assert not stack.number_state(first, "SM-two-start-first").opted_out
    assert sends().outcome is ActionOutcome.DONE
    assert [r.to for r in stack.requests_for("o-two")] == [first, first]


def test_a_shared_numbers_stop_covers_every_contact_and_its_start_lifts_it(
    stack: RunnerStack,
) -> None:
    shared, national = "+358401120004", "040 112 0004"
    stack.holds("o-home-1", mobilephone=shared)
    stack.holds("o-home-2", mobilephone=national)
    first = Sends(stack, "o-home-1", contact(shared))
    second = Sends(stack, "o-home-2", contact(national))

    stack.reply(shared, "Stop.", "SM-home-stop")
    assert stack.number_state(shared, "SM-home-stop").opted_out
    assert (first().reason, second().reason) == ("opted_out", "opted_out")
    # Each contact on the number gets its audit record (one indexed after the STOP inherits).
    audit = stack.changes.wait(
        lambda cs: (
            found
            if len(found := [c for c in cs if c.wide and c.contact_id.startswith("o-home")]) >= 2
            else None
        ),
        what="an audit record per contact",
    )
    assert sorted(c.contact_id for c in audit) == ["o-home-1", "o-home-2"]
    assert {(c.source_id, c.provider_message_id) for c in audit} == {("STOP", "SM-home-stop")}

    stack.reply(shared, "START", "SM-home-start")
    assert not stack.number_state(shared, "SM-home-start").opted_out
    assert (first().outcome, second().outcome) == (ActionOutcome.DONE, ActionOutcome.DONE)


VARIANTS = [
    ("stop please", "STOP"),
    ("\uff33\uff34\uff2f\uff30", "STOP"),  # full-width STOP
    ("STOP!", "STOP"),
    ("Lopeta", "LOPETA"),  # the account's own word
    ("opt out", "OPT OUT"),
]


@pytest.mark.parametrize(
    ("index", "body", "keyword"), [(i, body, word) for i, (body, word) in enumerate(VARIANTS)]
)
def test_reply_variants_opt_the_number_out(
    stack: RunnerStack, index: int, body: str, keyword: str
) -> None:
    number, contact_id = f"+35840113000{index}", f"o-variant-{index}"
    stack.holds(contact_id, mobilephone=number)
    stack.reply(number, body, f"SM-variant-{index}")
    state = stack.number_state(number, f"SM-variant-{index}")
    assert (state.opted_out, state.keyword) == (True, keyword)
    assert stack.run(send(contact_id, props=contact(number))).reason == "opted_out"


def test_a_template_driven_past_its_budget_skips_one_sms_and_the_runner_goes_on(
    stack: RunnerStack,
) -> None:
    props = contact("+358401120010", firstname="x" * 1000)
    stack.subscribe("o-loops")
    for step, message_id in ((3, "loops"), (4, "repeat")):
        result = stack.run(send("o-loops", step=step, props=props, message=message_id))
        assert result.outcome is ActionOutcome.SKIPPED
        assert result.reason is not None
        assert result.reason.startswith("render_budget_exceeded")
    assert stack.requests_for("o-loops") == []
    # Still serving: the next contact's SMS goes out at once.
    stack.subscribe("o-after-loops")
    assert stack.run(send("o-after-loops")).outcome is ActionOutcome.DONE
    assert stack.runner.healthy()


def test_a_contact_indexed_before_its_account_is_still_found_by_a_stop(
    stack: RunnerStack,
) -> None:
    number, national = "+358401120020", "040 112 0020"  # national: needs the account's region
    stack.producer.send(
        CONTACT_CHANGES,
        ContactChange(account_id="late", contact_id="o-late", properties={"mobilephone": national}),
    )
    stack.runner_log_waits_for("contact_numbers_indexed", "o-late")  # read without a region
    stack.producer.definitions(account("late", sender="+358451234569"))
    stack.producer.send(
        SMS_INBOUND,
        InboundSms.model_validate(
            {"account_id": "late", "from": number, "to": "+358451234569", "body": "STOP"}
        ),
    )
    [audit] = stack.changes.wait(
        lambda cs: [c for c in cs if c.contact_id == "o-late" and c.wide],
        what="the STOP to reach the contact",
    )
    assert (audit.status.value, audit.phone_masked) == ("UNSUBSCRIBED", "+35840*****20")


def test_no_table_or_router_views_are_served(stack: RunnerStack) -> None:
    stack.holds("o-web", mobilephone="+358401120011")
    base = f"http://127.0.0.1:{stack.runner.port}"
    for path in ("/table/", "/table/contact-numbers/", "/table/consent-ledger/", "/router/"):
        response = httpx.get(base + path, timeout=5)
        assert response.status_code == 404, path
        assert "358401120011" not in response.text
    assert httpx.get(base + "/healthz", timeout=5).status_code == 200
