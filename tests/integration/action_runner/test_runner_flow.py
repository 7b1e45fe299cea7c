"""The action runner on the real broker: consent, gates, keywords, deferral, bad records.

One runner process serves the whole module; each test uses contacts of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.actions import ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.sms import ProviderOptOut, SmsStatusEvent
from schemas.topics import ACTIONS, CONTACT_CHANGES, SMS_INBOUND
from services.action_runner.internal import WideConsentCommand
from services.common.idempotency import sms_key
from services.common.links import link_code
from tests.documents import SUBSCRIBE, account, message, workflow
from tests.harness import OpenTail
from tests.integration.action_runner.harness import (
    LINK_SECRET,
    RunnerProcess,
    RunnerStack,
    command,
    contact,
    send,
)
from tests.support import fresh_settings

pytestmark = pytest.mark.integration


def _night_window() -> dict[str, str]:
    """Quiet hours around the current Helsinki time, so a send now is deferred."""
    local = datetime.now(ZoneInfo("Europe/Helsinki"))
    start, end = local - timedelta(hours=2), local + timedelta(hours=2)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


DOCUMENTS: list[dict[str, Any]] = [
    account(help_text="Acme: help at acme.example"),
    message(),
    message("draft-msg", state="draft"),
    message("long-msg", body="x" * 1700),
    message("offer", body="Offer: {{ link('https://example.com/offer') }}"),
    workflow(),
    workflow("off-flow", enabled=False),
    account("noaccess", sms_access=False),
    message(account_id="noaccess"),
    workflow(account_id="noaccess"),
    account("night", quiet_hours=_night_window()),
    message(account_id="night"),
    workflow(account_id="night"),
    account("capped", frequency_cap={"max_messages": 3, "per_days": 7}),
    message(account_id="capped"),
    workflow(account_id="capped"),
    workflow("second-flow", account_id="capped"),
]


@contextmanager
def started(
    bootstrap: str,
    data: Path,
    clean_exit: bool = True,
    documents: list[dict[str, Any]] | None = None,
    **env: str,
) -> Iterator[RunnerStack]:
    """A runner of its own (topic prefix, data dir, ``env``) with ``documents`` applied
    (``DOCUMENTS`` by default); on exit it is stopped, and must have exited cleanly unless
    ``clean_exit`` is False."""
    settings = fresh_settings(bootstrap)
    runner = RunnerProcess(settings, data, **env)
    with RunnerStack(settings, runner, DOCUMENTS if documents is None else documents) as stack:
        yield stack
    assert runner.stop() == 0 or not clean_exit, runner.log()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerStack]:
    with started(kafka_bootstrap, Path(tmp_path_factory.mktemp("runner"))) as stack:
        yield stack


def test_subscribe_then_send_produces_exactly_one_request(stack: RunnerStack) -> None:
    subscribed = stack.subscribe("c-happy")
    assert subscribed.outcome is ActionOutcome.DONE
    marked = stack.run(
        command("c-happy", {"type": "set_marketing_contact_status", "marketing": True}, step=1)
    )
    sent = stack.run(send("c-happy"))
    assert sent.outcome is ActionOutcome.DONE

    [request] = stack.requests_for("c-happy")
    assert request.idempotency_key == sms_key(
        "acme", "welcome-flow", "acme/welcome-flow/c-happy/1", 3
    )
    assert (request.to, request.from_) == ("+358401234567", "+358451234567")
    assert request.body == "Hei Aino! Tervetuloa.\nReply STOP to opt out"
    assert [s.status.value for s in stack.statuses_for("c-happy")] == ["queued"]

    [audit] = [c for c in stack.changes.poll() if c.contact_id == "c-happy"]
    assert (audit.status.value, audit.previous_status.value) == ("SUBSCRIBED", "NOT_SPECIFIED")
    assert audit.legal_basis_explanation == "Ticked the SMS box at checkout"
    assert (audit.source.value, audit.source_id) == ("workflow", "welcome-flow")

    assert marked.contact_change is not None
    written = stack.contact_changes.wait(
        lambda cs: [c for c in cs if c.contact_id == "c-happy"], what="marketing write"
    )
    assert [c.event_id for c in written] == [marked.contact_change.event_id]
    assert written[0].properties == {"hs_marketable_status": "true"}
    assert written[0].source == "workflow:welcome-flow"


def test_a_replayed_command_is_answered_again_and_sends_nothing_new(stack: RunnerStack) -> None:
    stack.subscribe("c-replay")
    first = send("c-replay")
    stack.run(first)
    stack.producer.command(first)  # the same command again (a redelivery)
    # A later command of the same contact (same partition) proves the replay was handled.
    marker = stack.run(send("c-replay", step=4, message="draft-msg"))
    assert marker.outcome is ActionOutcome.SKIPPED
    assert len(stack.requests_for("c-replay")) == 1
    results = [r for r in stack.results.poll() if r.action_id == first.action_id]
    # The copy is answered with the stored result, event id and all: consumers see a repeat.
    assert len(results) == 2
    assert results[1] == results[0]
    assert "smsflow_action_runner_replayed_actions_total 1.0" in stack.runner.metrics()


GATES: list[tuple[str, bool, dict[str, Any]]] = [
    # (expected reason, subscribe first?, send arguments)
    ("workflow_disabled", True, {"workflow_id": "off-flow"}),
    ("sms_access_missing", False, {"account_id": "noaccess"}),
    ("message_not_published", True, {"message": "draft-msg"}),
    ("not_marketing_contact", True, {"props": contact(hs_marketable_status="false")}),
    ("not_subscribed", False, {}),
    ("no_phone_number", True, {"props": contact(None, phone="  ")}),
    ("invalid_phone_number", True, {"props": contact("12345")}),
    ("too_long", True, {"message": "long-msg"}),
]


@pytest.fixture(scope="module")
def gate_outcomes(stack: RunnerStack) -> dict[str, tuple[ActionResult, list[SmsStatusEvent]]]:
    """Every gate case at once (each its own contact), then their results and statuses."""
    cases = {
        reason: (f"c-gate-{i}", subscribe, kwargs)
        for i, (reason, subscribe, kwargs) in enumerate(GATES)
    }
    subscriptions = [command(cid, SUBSCRIBE, step=0) for cid, sub, _ in cases.values() if sub]
    for cmd in subscriptions:
        stack.producer.command(cmd)
    for cmd in subscriptions:
        assert stack.result(cmd).outcome is ActionOutcome.DONE
    sends = {reason: send(cid, **kwargs) for reason, (cid, _, kwargs) in cases.items()}
    for cmd in sends.values():
        stack.producer.command(cmd)
    return {
        reason: (
            stack.result(cmd),
            stack.statuses.wait(
                lambda ss, c=cmd: [s for s in ss if s.contact_id == c.contact_id], what=reason
            ),
        )
        for reason, cmd in sends.items()
    }


@pytest.mark.parametrize("reason", [g[0] for g in GATES])
def test_each_gate_failure_skips_with_its_reason_and_no_request(
    stack: RunnerStack,
    gate_outcomes: dict[str, tuple[ActionResult, list[SmsStatusEvent]]],
    reason: str,
) -> None:
    result, statuses = gate_outcomes[reason]
    assert (result.outcome, result.reason) == (ActionOutcome.SKIPPED, reason)
    assert [(s.status.value, s.reason) for s in statuses] == [("skipped", reason)]
    assert stack.requests_for(result.contact_id) == []


def _contact_change(contact_id: str, mobile: str) -> ContactChange:
    return ContactChange(
        account_id="acme",
        contact_id=contact_id,
        properties={"mobilephone": mobile, "hs_marketable_status": "true"},
    )


def test_stop_blocks_the_next_send_and_start_lifts_it(stack: RunnerStack, tail: OpenTail) -> None:
    number, national = "+358401110001", "040 111 0001"
    props = contact(national)
    consent_commands = tail(
        stack.settings,
        f"{stack.settings.topic_prefix}action-runner-consent-commands",
        WideConsentCommand,
    )
    # Two contacts share the number; both must be opted out by one STOP.
    stack.producer.send(
        CONTACT_CHANGES,
        _contact_change("c-stop-1", national),
        _contact_change("c-stop-2", number),
    )
    for cid in ("c-stop-1", "c-stop-2"):
        stack.subscribe(cid, props=props)
    stack.run(send("c-stop-1", step=1, props=props))  # sent before STOP
    stack.reply(number, " Stop ", "SM-stop-1")
    # As soon as the STOP became consent commands, the next send must see it.
    consent_commands.wait(lambda cs: len(cs) >= 2, what="consent commands")
    blocked = stack.run(send("c-stop-1", step=3, props=props))
    assert (blocked.outcome, blocked.reason) == (ActionOutcome.SKIPPED, "opted_out")
    other = stack.run(send("c-stop-2", step=3, props=props))
    assert other.reason == "opted_out"

    wide = [c for c in stack.changes.poll() if c.wide and c.contact_id.startswith("c-stop")]
    assert sorted(c.contact_id for c in wide) == ["c-stop-1", "c-stop-2"]
    assert {(c.status.value, c.source.value, c.source_id) for c in wide} == {
        ("UNSUBSCRIBED", "inbound_keyword", "STOP")
    }
    assert all(c.phone_masked == "+35840*****01" for c in wide)
    assert len(stack.requests_for("c-stop-1")) == 1  # only the one before STOP

    # A workflow may not resubscribe someone who texted STOP.
    refused = stack.run(command("c-stop-1", SUBSCRIBE, step=4, props=props))
    assert (refused.outcome, refused.reason) == (ActionOutcome.SKIPPED, "opted_out_of_all_sms")

    stack.reply(number, "START", "SM-start-1")
    stack.changes.wait(
        lambda cs: [
            c
            for c in cs
            if c.wide and c.contact_id == "c-stop-1" and c.status.value == "SUBSCRIBED"
        ],
        what="START",
    )
    again = stack.run(send("c-stop-1", step=5, props=props))
    assert again.outcome is ActionOutcome.DONE
    # Replies to one number are handled in order: once START's confirmation is out, a STOP
    # confirmation would be too. There is none: the gateway confirms opt-outs itself.
    replies = stack.requests.wait(
        lambda rs: [r for r in rs if r.to == number and r.message_id.startswith("keyword-")],
        what="START confirmation",
    )
    assert [r.message_id for r in replies] == ["keyword-start"]


def test_help_is_answered_with_the_account_help_text(stack: RunnerStack) -> None:
    number = "+358401110002"
    stack.reply(number, "help", "SM-help-1")
    stack.reply(number, "help", "SM-help-1")  # webhook retry
    replies = stack.requests.wait(
        lambda rs: [r for r in rs if r.to == number and r.message_id == "keyword-help"],
        what="HELP reply",
    )
    assert replies[0].body == "Acme: help at acme.example"
    assert replies[0].from_ == "+358451234567"
    assert len({r.idempotency_key for r in stack.requests.poll() if r.to == number}) == 1


def test_gateway_unsubscribed_error_opts_the_number_out(stack: RunnerStack) -> None:
    number = "+358401110003"
    stack.producer.send(CONTACT_CHANGES, _contact_change("c-21610", number))
    props = contact(number)
    stack.subscribe("c-21610", props=props)
    stack.producer.send(
        SMS_INBOUND,
        ProviderOptOut(account_id="acme", phone=number, error_code="21610", contact_id="c-21610"),
    )
    stack.changes.wait(
        lambda cs: [c for c in cs if c.contact_id == "c-21610" and c.wide], what="gateway opt-out"
    )
    blocked = stack.run(send("c-21610", props=props))
    assert blocked.reason == "opted_out"
    [change] = [c for c in stack.changes.poll() if c.contact_id == "c-21610" and c.wide]
    assert (change.source.value, change.source_id) == ("gateway_error", "21610")


def test_quiet_hours_defer_and_the_resend_is_rechecked(stack: RunnerStack) -> None:
    stack.subscribe("c-night", account_id="night")
    cmd = send("c-night", account_id="night")
    deferred = stack.run(cmd)
    assert (deferred.outcome, deferred.reason) == (ActionOutcome.DEFERRED, "quiet_hours")
    assert deferred.retry_at is not None
    assert deferred.retry_at > datetime.now(UTC)
    [status] = stack.statuses_for("c-night")
    assert (status.status.value, status.deferred_until) == ("deferred", deferred.retry_at)
    assert stack.requests_for("c-night") == []
    # The window opens (quiet hours turned off), the enroller re-sends the same command.
    stack.producer.definitions(account("night", quiet_hours=None))
    attempt = 1
    outcome = ActionOutcome.DEFERRED
    while outcome is ActionOutcome.DEFERRED and attempt < 20:  # until the change is read
        attempt += 1
        outcome = stack.run(send("c-night", account_id="night", attempt=attempt), attempt).outcome
    assert outcome is ActionOutcome.DONE
    [request] = stack.requests_for("c-night")
    assert request.idempotency_key == status.idempotency_key


def test_the_fourth_sms_within_a_cap_of_three_is_frequency_capped_across_workflows(
    stack: RunnerStack,
) -> None:
    stack.subscribe("c-cap", account_id="capped")
    first = stack.run(send("c-cap", step=1, account_id="capped"))
    second_cmd = send("c-cap", step=2, account_id="capped")
    second = stack.run(second_cmd)
    # The same SMS handled again (a re-attempt after a crash) is not counted twice.
    again = stack.run(send("c-cap", step=2, account_id="capped", attempt=2), count=2)
    third = stack.run(send("c-cap", step=1, account_id="capped", workflow_id="second-flow"))
    fourth_cmd = send("c-cap", step=2, account_id="capped", workflow_id="second-flow")
    fourth = stack.run(fourth_cmd)
    assert [r.outcome for r in (first, second, again, third)] == [ActionOutcome.DONE] * 4
    assert (fourth.outcome, fourth.reason) == (ActionOutcome.SKIPPED, "frequency_capped")
    requests = stack.requests_for("c-cap")
    assert len({r.idempotency_key for r in requests}) == 3
    assert {r.workflow_id for r in requests} == {"welcome-flow", "second-flow"}
    [capped] = [s for s in stack.statuses_for("c-cap") if s.reason == "frequency_capped"]
    assert capped.status.value == "skipped"
    assert capped.workflow_id == "second-flow"


def test_a_link_renders_a_short_url_and_the_request_names_its_code(stack: RunnerStack) -> None:
    stack.subscribe("c-link")
    assert stack.run(send("c-link", message="offer")).outcome is ActionOutcome.DONE
    [request] = stack.requests_for("c-link")
    code = link_code(LINK_SECRET.encode(), request.idempotency_key, "https://example.com/offer")
    assert request.links == {code: "https://example.com/offer"}
    assert request.body.startswith(f"Offer: http://127.0.0.1:8026/r/{code}\n")


def test_bad_records_go_to_dead_letters_and_the_runner_goes_on(stack: RunnerStack) -> None:
    stack.producer.raw(ACTIONS, b"acme:c-bad", b"{not json")
    stack.producer.raw(SMS_INBOUND, b"acme:+358401110009", b'{"event_type": "sms.weird"}')
    stack.producer.raw(CONTACT_CHANGES, b"acme:c-bad", b"\xff\xfe")
    unknown = send("c-bad").model_dump(mode="json", by_alias=True)
    unknown["action"] = {"type": "send_fax", "to": "nowhere"}
    stack.producer.raw(ACTIONS, b"acme:c-bad", json.dumps(unknown).encode())
    letters = stack.dead_letters.wait(
        lambda ds: ds if len(ds) >= 4 else None, what="four dead letters"
    )
    assert {d.service for d in letters} == {"action-runner"}
    by_topic = {d.topic.removeprefix(stack.settings.topic_prefix): d for d in letters}
    assert set(by_topic) == {"actions", "sms-inbound", "contact-changes"}
    assert "malformed JSON" in next(d for d in letters if d.value == "{not json").reason
    assert "sms.weird" in by_topic["sms-inbound"].reason
    assert by_topic["contact-changes"].value_encoding == "base64"
    failed = stack.result(send("c-bad"))
    assert failed.outcome is ActionOutcome.FAILED
    assert failed.reason is not None
    assert failed.reason.startswith("invalid_command")
    # Still running: the next good command is handled.
    stack.subscribe("c-after-bad")
    assert stack.run(send("c-after-bad")).outcome is ActionOutcome.DONE


def test_logs_mask_numbers_and_never_carry_bodies(stack: RunnerStack) -> None:
    """Runs last in the module: everything above has been logged by now."""
    lines = stack.runner.logged()
    events = [line["event"] for line in lines]
    assert "service_ready" in events
    assert events.count("action_handled") >= 30  # one line per handled command
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    for number in ("+358401234567", "358401110001", "+358401110003"):
        assert number not in text
    for body in ("Tervetuloa", "Acme: help at acme.example", "Reply START"):
        assert body not in text
    handled = next(line for line in lines if line["event"] == "action_handled")
    assert {"action_id", "account_id", "contact_id", "outcome", "where"} <= set(handled)
