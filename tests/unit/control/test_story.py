from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

from schemas.definitions import SendingWindow
from schemas.sms import SmsStatus, SmsStatusEvent
from services.control.story import Progress, held_by_windows, index_latest, load_story

STORY = Path(__file__).resolve().parents[3] / "examples" / "contacts" / "demo-contacts.yaml"


def event(
    contact: str, workflow: str, status: SmsStatus, reason: str | None = None
) -> SmsStatusEvent:
    return SmsStatusEvent(
        account_id="acme", contact_id=contact, workflow_id=workflow, status=status, reason=reason
    )


def test_the_demo_story_loads_and_covers_the_seed_scenarios() -> None:
    story = load_story(STORY)
    reasons = {e.reason for c in story.contacts for e in c.expect}
    assert {"not_marketing_contact", "invalid_phone_number", "opted_out"} <= reasons
    assert any(
        "phone" in c.properties and "mobilephone" not in c.properties for c in story.contacts
    )
    assert [c.id for c in story.contacts if c.reply] == ["1005"]


def test_a_replying_contact_settles_only_after_the_follow_up() -> None:
    story = load_story(STORY)
    sanna = next(c for c in story.contacts if c.id == "1005")
    progress = Progress(story)
    latest = index_latest([event("1005", "welcome-flow", SmsStatus.QUEUED)])
    assert not progress.reply_due(sanna, latest)
    latest = index_latest([event("1005", "welcome-flow", SmsStatus.DELIVERED)])
    assert progress.reply_due(sanna, latest)
    progress.replied.add("1005")
    assert not progress.reply_due(sanna, latest)
    assert not progress.settled(sanna, latest)
    progress.followed_up.add("1005")
    done = index_latest(
        [
            event("1005", "welcome-flow", SmsStatus.DELIVERED),
            event("1005", "vip-flow", SmsStatus.SKIPPED, "opted_out"),
        ]
    )
    assert progress.settled(sanna, done)
    verdicts = [(c.id, e.workflow, ok) for c, e, ok in progress.verdicts(done) if c.id == "1005"]
    assert verdicts == [("1005", "welcome-flow", True), ("1005", "vip-flow", True)]


def test_a_wrong_outcome_is_a_miss_and_summary_counts() -> None:
    story = load_story(STORY)
    progress = Progress(story)
    latest = index_latest([event("1004", "welcome-flow", SmsStatus.SKIPPED, "no_phone_number")])
    (miss,) = [ok for c, _, ok in progress.verdicts(latest) if c.id == "1004"]
    assert miss is False
    assert progress.summary(latest) == f"waiting for {len(story.contacts)} contacts: 1 settled"


def test_a_sending_window_deferral_meets_an_expectation_that_allows_it() -> None:
    story = load_story(STORY)
    progress = Progress(story)
    latest = index_latest(
        [
            event("1007", "cart-flow", SmsStatus.DEFERRED, "sending_window"),
            event("1008", "cart-flow", SmsStatus.DEFERRED, "quiet_hours"),
        ]
    )
    verdicts = {c.id: ok for c, e, ok in progress.verdicts(latest) if e.workflow == "cart-flow"}
    assert verdicts == {"1007": True, "1008": False}


def test_a_sending_window_closed_at_publish_time_holds_the_cart_flow_contacts() -> None:
    story = load_story(STORY)
    window = SendingWindow(start=time(8), end=time(21))  # Helsinki time, as in examples/
    night = datetime(2026, 11, 30, 20, 30, tzinfo=UTC)  # 22:30 in Helsinki
    day = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    held = held_by_windows(story, {"cart-flow": window}, night)
    assert held == {("1007", "cart-flow"), ("1008", "cart-flow")}
    assert held_by_windows(story, {"cart-flow": window}, day) == set()

    emma = next(c for c in story.contacts if c.id == "1007")
    waiting, by_day = Progress(story, held=held), Progress(story)
    # Held: no SMS status is the expected outcome, and the contact is settled at once.
    assert waiting.settled(emma, {})
    assert [ok for c, _, ok in waiting.verdicts({}) if c.id == "1007"] == [True]
    # Open window: no status yet is not settled, and at the end it is a miss.
    assert not by_day.settled(emma, {})
    assert [ok for c, _, ok in by_day.verdicts({}) if c.id == "1007"] == [False]
    delivered = index_latest([event("1007", "cart-flow", SmsStatus.DELIVERED)])
    assert [ok for c, _, ok in waiting.verdicts(delivered) if c.id == "1007"] == [True]
