"""The loopback-only test ledger and controls under ``/_sim/``."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .responses import bad_request, json_response, read_json_object
from .state import SIMULATOR


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; judge the IPv4 address.
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def list_messages(request: web.Request) -> web.Response:
    ledger = request.app[SIMULATOR].ledger
    return json_response([record.to_json() for record in ledger.messages()])


async def list_requests(request: web.Request) -> web.Response:
    ledger = request.app[SIMULATOR].ledger
    return json_response([record.to_json() for record in ledger.requests()])


async def reset(request: web.Request) -> web.Response:
    request.app[SIMULATOR].reset()
    return json_response({"ok": True})


async def show_config(request: web.Request) -> web.Response:
    return json_response(request.app[SIMULATOR].config.as_dict())


async def update_config(request: web.Request) -> web.Response:
    """Change fault rates and timings at runtime, e.g. ``{"fail_rate": 0.5}``."""
    sim = request.app[SIMULATOR]
    changes = await read_json_object(request)
    if changes is None:
        return bad_request("body must be a JSON object")
    seed = changes.pop("seed", ...)
    try:
        config = sim.config.updated(changes)
    except ValueError as exc:
        return bad_request(str(exc))
    if seed is not ...:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            return bad_request("seed must be an integer or null")
        sim.faults.reseed(seed)
    sim.faults.config = config
    return json_response(config.as_dict())


async def list_opt_outs(request: web.Request) -> web.Response:
    return json_response(request.app[SIMULATOR].opt_outs.numbers())


async def add_opt_out(request: web.Request) -> web.Response:
    payload = await read_json_object(request)
    number = None if payload is None else payload.get("number")
    if not isinstance(number, str) or not number:
        return bad_request('body must be {"number": "<E.164>"}')
    request.app[SIMULATOR].opt_outs.add(number)
    return json_response({"number": number, "opted_out": True}, 201)


async def remove_opt_out(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    request.app[SIMULATOR].opt_outs.discard(number)
    return json_response({"number": number, "opted_out": False})
