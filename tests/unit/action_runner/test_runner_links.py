"""``{{ link(url) }}`` in a body: a short tracking URL per SMS and link, in the request."""

from __future__ import annotations

import pytest

from schemas.actions import ActionOutcome
from schemas.sms import SmsRequest
from services.action_runner.commands import Handled, handle_command
from services.action_runner.tracked_links import TrackedLinks
from services.common.idempotency import sms_key
from services.common.links import link_code
from services.common.rendering import render
from tests.unit.action_runner.defs import NOON, SUBSCRIBED, Defs, account, command, message

SECRET = b"test-link-secret"
LONG = "https://example.com/offer?" + "&".join(f"utm_{n}=campaign-{n}" for n in range(20))
KEY = sms_key("acme", "welcome-flow", "acme/welcome-flow/1001/1", 3)


def _defs(body: str, **account_spec: object) -> Defs:
    defs = Defs()
    defs.accounts["acme"] = account(**account_spec)
    defs.messages["welcome"] = message(body=body)
    return defs


def _request(handled: Handled) -> SmsRequest:
    [request] = [e.event for e in handled.effects.emissions if isinstance(e.event, SmsRequest)]
    return request


def test_a_link_renders_a_short_url_and_the_request_carries_its_code() -> None:
    body = "Offer: {{ link('" + LONG + "') }} and {{ link('https://example.com/b') }}"
    handled = handle_command(command(), _defs(body), SUBSCRIBED, NOON, link_secret=SECRET)
    request = _request(handled)
    offer, other = link_code(SECRET, KEY, LONG), link_code(SECRET, KEY, "https://example.com/b")
    assert request.body.startswith(
        f"Offer: http://127.0.0.1:8026/r/{offer} and http://127.0.0.1:8026/r/{other}\n"
    )
    assert request.links == {offer: LONG, other: "https://example.com/b"}
    # Counted on what is sent: the long URL alone would take more than one segment.
    assert len(LONG) > 160
    assert request.segments == 1


def test_a_resend_of_the_same_sms_renders_the_same_codes_another_sms_others() -> None:
    defs = _defs("{{ link('" + LONG + "') }}", link_domain="https://ac.me/r/")
    first = _request(handle_command(command(), defs, SUBSCRIBED, NOON, link_secret=SECRET))
    again = _request(handle_command(command(attempt=2), defs, SUBSCRIBED, NOON, link_secret=SECRET))
    other = _request(handle_command(command(step=4), defs, SUBSCRIBED, NOON, link_secret=SECRET))
    assert (again.body, again.links, again.segments) == (first.body, first.links, first.segments)
    assert first.body.startswith("https://ac.me/r/")
    assert other.links is not None
    assert first.links is not None
    assert set(other.links).isdisjoint(first.links)


def test_a_body_without_links_carries_none() -> None:
    request = _request(handle_command(command(), Defs(), SUBSCRIBED, NOON, link_secret=SECRET))
    assert request.links is None


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative", "example.com/x", ""])
def test_a_link_to_anything_but_an_absolute_http_url_fails_the_render(url: str) -> None:
    handled = handle_command(
        command(), _defs("Go {{ link('" + url + "') }}"), SUBSCRIBED, NOON, link_secret=SECRET
    )
    assert handled.result.outcome is ActionOutcome.FAILED
    assert (handled.result.reason or "").startswith("render_failed")


def test_a_link_may_be_built_from_contact_properties() -> None:
    links = TrackedLinks(SECRET, KEY, "https://ac.me/r/")
    text = render(
        "{{ link('https://ac.me/u/' ~ contact.firstname) }}", {"firstname": "Aino"}, {}, links
    )
    assert links.codes == {text.removeprefix("https://ac.me/r/"): "https://ac.me/u/Aino"}


def test_without_tracking_a_link_renders_as_written() -> None:
    assert render("{{ link('https://example.com') }}", {}) == "https://example.com"
