"""Tracked links on the real broker: a clicked short link redirects and publishes one click,
and the sender still knows its codes after a restart (they live in ``sms-ledger``)."""

from __future__ import annotations

import httpx
import pytest

from schemas.sms import SmsLinkClicked, SmsStatus
from schemas.topics import SMS_CLICKS, SMS_REQUESTS
from services.common.links import link_code
from tests.documents import publish_definitions
from tests.harness import StartService
from tests.integration.sms_sender.processes import Sender, Simulator, free_port
from tests.integration.sms_sender.traffic import make_requests, statuses_by_key
from tests.samples import design_documents
from tests.support import fresh_settings, produce, read_all, read_models, wait_for

pytestmark = pytest.mark.integration

OFFER = "https://example.com/offer?utm_source=sms"


def test_a_clicked_short_link_redirects_and_publishes_exactly_one_click(
    kafka_bootstrap: str, service: StartService
) -> None:
    settings = fresh_settings(kafka_bootstrap)
    publish_definitions(settings, design_documents()[:1])
    [request] = make_requests(1, "links")
    code = link_code(b"test-secret", request.idempotency_key, OFFER)
    request = request.model_copy(
        update={"links": {code: OFFER}, "body": f"Offer: http://127.0.0.1/r/{code}"}
    )
    port = free_port()
    sim = service(Simulator("http", port))
    sender = Sender(settings, sim, "http", port).start()
    restarted: Sender | None = None
    try:
        produce(settings, SMS_REQUESTS, [request])
        wait_for(
            lambda: (
                SmsStatus.SENT
                in {e.status for e in statuses_by_key(settings)[request.idempotency_key]}
            ),
            what="the SMS sent",
        )
        unknown = link_code(b"test-secret", request.idempotency_key, OFFER + "&x")
        assert httpx.get(f"{sender.url}/r/{unknown}").status_code == 404
        answer = httpx.get(f"{sender.url}/r/{code}", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (302, OFFER)

        [click] = wait_for(lambda: read_models(settings, SMS_CLICKS, SmsLinkClicked), what="click")
        assert (click.account_id, click.contact_id, click.workflow_id, click.message_id) == (
            "acme",
            request.contact_id,
            "welcome-flow",
            "welcome",
        )
        assert (click.idempotency_key, click.url) == (request.idempotency_key, OFFER)
        [(key, _)] = read_all(settings, SMS_CLICKS)
        assert key == f"acme:{request.contact_id}"

        # A sender started afresh rebuilds the codes with its ledger.
        assert sender.stop() == 0
        restarted = Sender(settings, sim, "http", free_port()).start()
        again = httpx.get(f"{restarted.url}/r/{code}", follow_redirects=False)
        assert (again.status_code, again.headers["location"]) == (302, OFFER)
        clicks = wait_for(
            lambda: (found := read_models(settings, SMS_CLICKS, SmsLinkClicked))[1:] and found,
            what="the second click",
        )
        assert len(clicks) == 2
        assert clicks[0].event_id != clicks[1].event_id
        assert len(sim.get("/_sim/requests")) == 1  # the restart sent nothing again
    finally:
        codes = [s.stop() for s in (sender, restarted) if s is not None]
    assert codes == [0] * len(codes)
