"""``GET /r/<code>``: 302 and one click event for a known code, the same 404 for any other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.ledger import LedgerState
from schemas.sms import SmsLinkClicked
from schemas.topics import SMS_CLICKS
from services.common.links import link_code
from services.sms_sender.ledger import Ledger
from services.sms_sender.metrics import Metrics
from services.sms_sender.publisher import MemoryPublisher
from services.sms_sender.redirects import Redirects
from services.sms_sender.statuses import advance, new_entry
from tests.unit.sms_sender.factories import request

OFFER = "https://example.com/offer?utm_source=sms"
CODE = link_code(b"secret", "sms-key-0001", OFFER)
OTHER = link_code(b"secret", "sms-key-0001", "https://example.com/other")


def test_the_ledger_finds_a_link_in_any_later_entry_of_its_key() -> None:
    ledger = Ledger()
    sending = new_entry(request(links={CODE: OFFER}), LedgerState.SENDING, api="http", attempts=1)
    ledger.apply(sending, 0)
    ledger.apply(advance(sending, LedgerState.SENT, provider_message_id="SM1"), 0)
    found = ledger.link(CODE)
    assert found is not None
    entry, url = found
    assert (entry.state, entry.idempotency_key, url) == (LedgerState.SENT, "sms-key-0001", OFFER)
    assert ledger.link(OTHER) is None


@pytest_asyncio.fixture
async def client() -> AsyncIterator[tuple[MemoryPublisher, TestClient]]:  # type: ignore[type-arg]
    ledger = Ledger()
    sent = new_entry(request(links={CODE: OFFER}), LedgerState.SENT, api="http", attempts=1)
    ledger.apply(sent, 1)
    publisher = MemoryPublisher()
    app = Redirects(ledger, publisher, Metrics()).register(web.Application())
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield publisher, test_client
    await test_client.close()


@pytest.mark.asyncio
async def test_a_known_code_redirects_and_publishes_one_click_per_click(
    client: tuple[MemoryPublisher, TestClient],  # type: ignore[type-arg]
) -> None:
    publisher, http = client
    for _ in range(2):
        answer = await http.get(f"/r/{CODE}", allow_redirects=False)
        assert answer.status == 302
        assert answer.headers["Location"] == OFFER
    clicks = publisher.of(SMS_CLICKS.name)
    assert len(clicks) == 2
    assert clicks[0].event_id != clicks[1].event_id
    click = clicks[0]
    assert isinstance(click, SmsLinkClicked)
    assert (click.account_id, click.contact_id, click.workflow_id, click.message_id) == (
        "acme",
        "c1",
        "welcome-flow",
        "welcome",
    )
    assert (click.idempotency_key, click.url, click.key) == ("sms-key-0001", OFFER, "acme:c1")


@pytest.mark.asyncio
async def test_unknown_and_malformed_codes_get_the_same_bare_404_and_publish_nothing(
    client: tuple[MemoryPublisher, TestClient],  # type: ignore[type-arg]
) -> None:
    publisher, http = client
    answers = []
    for code in (OTHER, CODE.lower(), CODE[:-1], "x" * 200, "%2e%2e"):
        answer = await http.get(f"/r/{code}", allow_redirects=False)
        answers.append((answer.status, await answer.text()))
    assert set(answers) == {(404, "404: Not Found")}
    assert (await http.get("/nowhere")).status == 404
    assert publisher.of(SMS_CLICKS.name) == []
