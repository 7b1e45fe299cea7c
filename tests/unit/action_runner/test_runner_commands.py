"""Running commands: what each action emits, in which order, and replays of the same one."""

from __future__ import annotations

import json
from datetime import timedelta

from schemas.actions import ActionOutcome, ActionResult
from schemas.contacts import ContactChange
from schemas.sms import SmsRequest, SmsStatus, SmsStatusEvent
from schemas.subscriptions import SubscriptionChange, SubscriptionStatus
from services.action_runner.commands import (
    CONSENT_PENDING,
    Handled,
    defer_send,
    handle_command,
    invalid_command_result,
)
from services.common.codec import encode
from services.common.idempotency import sms_key
from tests.unit.action_runner.defs import (
    NIGHT,
    NOON,
    SUBSCRIBED,
    Defs,
    account,
    command,
    message,
    workflow,
)
from tests.unit.action_runner.test_runner_consent import SUBSCRIBE


def topics(handled: Handled) -> list[str]:
    return [
        e.topic if isinstance(e.topic, str) else e.topic.name for e in handled.effects.emissions
    ]


def test_send_emits_queued_status_then_request_then_done_result() -> None:
    handled = handle_command(command(), Defs(), SUBSCRIBED, NOON)
    # queued before the request: the sender's statuses for it can only come after
    assert topics(handled) == ["sms-status", "sms-requests", "action-results"]
    status, request, result = (e.event for e in handled.effects.emissions)
    assert isinstance(request, SmsRequest)
    assert isinstance(status, SmsStatusEvent)
    key = sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", 3)
    assert request.idempotency_key == status.idempotency_key == key
    assert (request.to, request.from_, request.to_masked) == (
        "+358401234567",
        "+358451234567",
        "+35840*****67",
    )
    assert request.body == "Hei Aino! Tervetuloa.\nReply STOP to opt out"
    assert (request.segments, request.encoding.value) == (1, "gsm7")
    assert request.action_id == "acme/welcome-flow/1001/1#3"
    assert status.status is SmsStatus.QUEUED
    assert status.segments == 1
    assert result == handled.result
    assert handled.result.outcome is ActionOutcome.DONE
    for emission in handled.effects.emissions:
        assert emission.key == "acme:1001"
    # The status event never carries the number or the body.
    text = encode(status).decode()
    assert "+358401234567" not in text
    assert "Tervetuloa" not in text


def test_skip_emits_status_with_reason_and_no_request() -> None:
    handled = handle_command(command(), Defs(), None, NOON)
    assert topics(handled) == ["sms-status", "action-results"]
    status = handled.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert (status.status, status.reason) == (SmsStatus.SKIPPED, "not_subscribed")
    assert (handled.result.outcome, handled.result.reason) == (
        ActionOutcome.SKIPPED,
        "not_subscribed",
    )


def test_quiet_hours_defer_with_retry_at_and_the_resend_uses_the_same_key() -> None:
    first = handle_command(command(), Defs(), SUBSCRIBED, NIGHT)
    assert topics(first) == ["sms-status", "action-results"]
    status = first.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert status.status is SmsStatus.DEFERRED
    assert status.reason == "quiet_hours"
    assert status.deferred_until is not None
    assert first.result.outcome is ActionOutcome.DEFERRED
    assert first.result.retry_at == status.deferred_until
    # The enroller re-sends the same command (attempt 2) at retry_at: every gate again.
    again = handle_command(command(attempt=2), Defs(), SUBSCRIBED, status.deferred_until)
    request = again.effects.emissions[1].event  # after its queued status
    assert isinstance(request, SmsRequest)
    assert request.idempotency_key == status.idempotency_key
    assert again.result.event_id != first.result.event_id
    # ...and if consent went away meanwhile, it is skipped.
    assert handle_command(command(attempt=2), Defs(), None, NOON).result.reason == "not_subscribed"


def test_a_send_put_off_for_consent_is_deferred_and_decided_on_its_resend() -> None:
    until = NOON + timedelta(seconds=30)
    first = defer_send(command(), NOON, until, CONSENT_PENDING)
    assert topics(first) == ["sms-status", "action-results"]
    status = first.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert (status.status, status.reason, status.deferred_until) == (
        SmsStatus.DEFERRED,
        "consent_pending",
        until,
    )
    assert (first.result.outcome, first.result.retry_at) == (ActionOutcome.DEFERRED, until)
    # The resend, once the number's opt-outs are current, sees the STOP.
    again = handle_command(
        command(attempt=2), Defs(), SUBSCRIBED, until, opted_out=lambda account, number: True
    )
    assert (again.result.outcome, again.result.reason) == (ActionOutcome.SKIPPED, "opted_out")
    assert topics(again) == ["sms-status", "action-results"]


def test_a_render_past_its_budget_skips_that_sms() -> None:
    body = (
        "{% for a in contact.firstname %}{% for b in contact.firstname %}x{% endfor %}{% endfor %}"
    )
    defs = Defs(messages={"welcome": message(body=body)})
    cmd = command()
    cmd = cmd.model_copy(update={"contact": {**cmd.contact, "firstname": "y" * 500}})
    handled = handle_command(cmd, defs, SUBSCRIBED, NOON)
    assert handled.result.outcome is ActionOutcome.SKIPPED
    assert handled.result.reason == "render_budget_exceeded: more than 10000 loop iterations"


def test_handling_the_same_command_twice_emits_the_same_events() -> None:
    first = handle_command(command(), Defs(), SUBSCRIBED, NOON)
    second = handle_command(command(), Defs(), SUBSCRIBED, NOON)
    assert [encode(e.event) for e in first.effects.emissions] == [
        encode(e.event) for e in second.effects.emissions
    ]


def test_another_enrollment_or_step_gets_another_key() -> None:
    keys = {
        handle_command(c, Defs(), SUBSCRIBED, NOON).effects.emissions[0].event.idempotency_key  # type: ignore[attr-defined]
        for c in (command(), command(sequence=2), command(step=4))
    }
    assert len(keys) == 3


def test_draft_message_and_disabled_workflow_skip() -> None:
    defs = Defs(messages={"welcome": message(state="draft")})
    assert handle_command(command(), defs, SUBSCRIBED, NOON).result.reason == (
        "message_not_published"
    )
    defs = Defs(workflows={"welcome-flow": workflow(enabled=False)})
    assert handle_command(command(), defs, SUBSCRIBED, NOON).result.reason == "workflow_disabled"


def test_render_failure_is_a_failed_result_and_status() -> None:
    defs = Defs(messages={"welcome": message(body="{% if %}")})
    handled = handle_command(command(), defs, SUBSCRIBED, NOON)
    assert handled.result.outcome is ActionOutcome.FAILED
    status = handled.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert status.status is SmsStatus.FAILED


def test_manage_subscription_appends_the_change_before_the_result() -> None:
    handled = handle_command(
        command(SUBSCRIBE | {"type": "manage_subscription"}), Defs(), None, NOON
    )
    assert topics(handled) == ["subscription-changes", "action-results"]
    change = handled.effects.emissions[0].event
    assert isinstance(change, SubscriptionChange)
    assert change.status is SubscriptionStatus.SUBSCRIBED
    assert handled.consent_change == change
    assert handled.result.outcome is ActionOutcome.DONE


def test_manage_subscription_outcomes() -> None:
    action = SUBSCRIBE | {"type": "manage_subscription"}
    same = handle_command(command(action), Defs(), SUBSCRIBED.model_copy(), NOON)
    # SUBSCRIBED in defs has another explanation: a new legal basis is recorded.
    assert same.consent_change is not None
    unchanged = handle_command(
        command(
            action | {"legal_basis_explanation": "Ticked the box", "processing_legal_basis": None}
        ),
        Defs(),
        SUBSCRIBED,
        NOON,
    )
    assert (unchanged.result.outcome, unchanged.result.reason) == (
        ActionOutcome.DONE,
        "no_status_change",
    )
    assert unchanged.consent_change is None
    assert topics(unchanged) == ["action-results"]


def test_manage_subscription_of_an_unknown_type_fails_and_dead_letters() -> None:
    action = SUBSCRIBE | {"type": "manage_subscription", "subscription_type": "nope"}
    handled = handle_command(command(action), Defs(), None, NOON)
    assert handled.result.outcome is ActionOutcome.FAILED
    assert handled.effects.dead_letter is not None
    assert "nope" in handled.effects.dead_letter


def test_unknown_account_fails_and_dead_letters() -> None:
    handled = handle_command(
        command({"type": "set_marketing_contact_status", "marketing": True}),
        Defs(accounts={}),
        None,
        NOON,
    )
    assert (handled.result.outcome, handled.result.reason) == (
        ActionOutcome.FAILED,
        "unknown_account",
    )
    assert handled.effects.dead_letter


def test_set_marketing_status_writes_the_property_back_and_embeds_it() -> None:
    for marketing, value in ((True, "true"), (False, "false")):
        handled = handle_command(
            command({"type": "set_marketing_contact_status", "marketing": marketing}),
            Defs(),
            None,
            NOON,
        )
        assert topics(handled) == ["contact-changes", "action-results"]
        change = handled.effects.emissions[0].event
        assert isinstance(change, ContactChange)
        assert change.properties == {"hs_marketable_status": value}
        assert change.source == "workflow:welcome-flow"
        assert change.key == "acme:1001"
        result = handled.effects.emissions[1].event
        assert isinstance(result, ActionResult)
        assert result.contact_change == change
        assert result.contact_change.event_id == change.event_id


def test_actions_of_a_disabled_workflow_are_skipped() -> None:
    defs = Defs(workflows={"welcome-flow": workflow(enabled=False)})
    handled = handle_command(
        command({"type": "set_marketing_contact_status", "marketing": True}), defs, None, NOON
    )
    assert (handled.result.outcome, handled.result.reason) == (
        ActionOutcome.SKIPPED,
        "workflow_disabled",
    )
    assert topics(handled) == ["action-results"]


def test_delay_is_not_run_here() -> None:
    handled = handle_command(command({"type": "delay", "minutes": 5}), Defs(), None, NOON)
    assert handled.result.outcome is ActionOutcome.FAILED


def test_unknown_action_type_becomes_a_failed_result() -> None:
    raw = json.loads(encode(command()))
    raw["action"] = {"type": "send_fax", "to": "nowhere"}
    result = invalid_command_result(json.dumps(raw).encode(), "action: unknown type", NOON)
    assert result is not None
    assert result.outcome is ActionOutcome.FAILED
    assert result.action_id == raw["action_id"]
    assert result.step == 3
    assert result.reason is not None
    assert "unknown type" in result.reason
    assert invalid_command_result(b"{not json", "malformed", NOON) is None
    assert invalid_command_result(None, "tombstone", NOON) is None


def test_a_send_of_an_unknown_account_fails_and_dead_letters() -> None:
    handled = handle_command(command(), Defs(accounts={}), SUBSCRIBED, NOON)
    assert (handled.result.outcome, handled.result.reason) == (
        ActionOutcome.FAILED,
        "unknown_account",
    )
    assert handled.effects.dead_letter == "unknown account 'acme'"
    assert topics(handled) == ["sms-status", "action-results"]  # no request
    status = handled.effects.emissions[0].event
    assert isinstance(status, SmsStatusEvent)
    assert (status.status, status.reason) == (SmsStatus.FAILED, "unknown_account")
    assert handled.sent is None


def test_a_send_of_an_account_without_sms_access_is_skipped_not_dead_lettered() -> None:
    handled = handle_command(
        command(), Defs(accounts={"acme": account(sms_access=False)}), SUBSCRIBED, NOON
    )
    assert (handled.result.outcome, handled.result.reason) == (
        ActionOutcome.SKIPPED,
        "sms_access_missing",
    )
    assert handled.effects.dead_letter is None
