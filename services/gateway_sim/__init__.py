"""SMS gateway simulator: a stand-in for a paid SMS provider.

Two provider APIs (a generic JSON API with Idempotency-Key semantics and a
Twilio-shaped form API without de-duplication), injectable faults, delivery
callbacks, inbound replies and a loopback-only test ledger under ``/_sim/``.

Run it with ``python -m services.gateway_sim`` or ``smsflow gateway-sim``.
This package imports nothing heavy on purpose: the pure modules
(``idempotency``, ``faults``, ``segments``) stay importable
without aiohttp so the sender can reuse them.
"""
