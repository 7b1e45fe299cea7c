"""``POST /v1/messages``: the generic JSON API with Idempotency-Key semantics."""

from __future__ import annotations

import os
import time

from aiohttp import web

from services.common.segments import count_segments

from .faults import Fault
from .idempotency import Claim, StoredResponse, fingerprint, parse_idempotency_key
from .ledger import MessageRecord
from .responses import dump, proxy_bad_gateway, raw_json_response, read_json_object, refusal
from .simulator import Simulator
from .state import SIMULATOR
from .validation import ApiError, check_message

REPLAYED_HEADER = {"Idempotent-Replayed": "true"}

MISSING_KEY = ApiError(
    400,
    400,
    "idempotency_key_missing",
    "The Idempotency-Key header is required (1-255 characters).",
)
INVALID_JSON = ApiError(400, 400, "invalid_json", "The body must be a JSON object.")
KEY_REUSED = ApiError(
    422,
    422,
    "idempotency_key_reused",
    "This Idempotency-Key was already used with a different request payload.",
)
KEY_IN_FLIGHT = ApiError(
    409,
    409,
    "idempotency_key_in_flight",
    "A request with this Idempotency-Key is still being processed; retry later.",
)


async def create_message(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    fault = sim.faults.decide()  # like a load balancer: before anything is looked at
    if fault.refuses:
        await sim.pause()
        return refusal(fault, sim.config, twilio=False)

    key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
    payload = await read_json_object(request)
    if key is None or payload is None:
        await sim.pause()
        return _error(MISSING_KEY if key is None else INVALID_JSON)

    fields = {name: payload.get(name) for name in ("to", "from", "body")}
    lookup = sim.idempotency.begin(key, fingerprint(fields), sim.clock())
    if lookup.claim is Claim.FRESH:
        try:
            await sim.pause()  # the key stays claimed meanwhile: retries now get 409
            stored = _process(sim, key, payload)
            sim.idempotency.complete(key, stored, sim.clock())
        finally:
            sim.idempotency.release(key)  # no-op once completed
        headers = None
    else:
        await sim.pause()
        if lookup.claim is Claim.REPLAY and lookup.response is not None:
            stored, headers = lookup.response, REPLAYED_HEADER
        else:
            error = KEY_REUSED if lookup.claim is Claim.MISMATCH else KEY_IN_FLIGHT
            stored, headers = StoredResponse(error.status, dump(error.generic_body())), None

    if fault is Fault.TIMEOUT:
        await sim.answer_late()  # already stored: a replay now gets the first answer
    if fault is Fault.ERROR_AFTER_ACCEPT:
        return proxy_bad_gateway()  # stored too: a resend with the key gets the 201
    return raw_json_response(stored.body, stored.status, headers)


def _process(sim: Simulator, key: str, payload: dict[str, object]) -> StoredResponse:
    """Validate and accept; the answer (201 or 4xx) is what replays will get."""
    to, from_, body = payload.get("to"), payload.get("from"), payload.get("body")
    callback = payload.get("status_callback") or None
    error = check_message(to, from_, body, callback, sim.opt_outs)
    if error is not None:
        return StoredResponse(error.status, dump(error.generic_body()))
    # check_message passed, so these are strings; the asserts narrow the types.
    assert isinstance(to, str)
    assert isinstance(from_, str)
    assert isinstance(body, str)
    assert callback is None or isinstance(callback, str)
    segments, encoding, _ = count_segments(body)
    record = MessageRecord(
        id="msg_" + os.urandom(16).hex(),
        api="http",
        to=to,
        from_=from_,
        body=body,
        idempotency_key=key,
        received_at=time.time(),
        status="accepted",
        segments=segments,
        encoding=encoding,
        status_callback=callback,
    )
    sim.accept(record)
    response = {
        "id": record.id,
        "status": "accepted",
        "to": to,
        "from": from_,
        "segments": segments,
        "encoding": encoding,
    }
    return StoredResponse(201, dump(response))


def _error(error: ApiError) -> web.Response:
    return raw_json_response(dump(error.generic_body()), error.status)
