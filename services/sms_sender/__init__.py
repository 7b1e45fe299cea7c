"""The SMS sender: gateway I/O with idempotency keys, retries, rate limits, statuses, webhooks.

Pure decisions: ``ledger`` (states and what to do with a key), ``retries`` (backoff and the
step after each outcome), ``rate_limiter``, ``offsets`` (what may be committed), ``callbacks``
(webhook payloads) and ``statuses`` (ledger entries and status events). Side effects:
``dispatcher`` (one request, start to end), the gateways behind ``gateway.SmsGateway``
(``http_gateway``, ``twilio_gateway``, ``fake_gateway``), and the edges ``consumer``,
``ledger_feed`` and ``publisher`` (aiokafka, on the one loop) and ``server`` (aiohttp).
``service`` wires them; see README.md for the exactly-once design.
"""
