"""The SMS sender: gateway I/O with idempotency keys, retries, rate limits, statuses, webhooks.

Pure decisions live in ``ledger``, ``retries``, ``rate_limiter``, ``offsets``, ``callbacks``
and ``statuses``; ``dispatcher`` does the side effects; ``consumer``, ``ledger_feed``,
``publisher`` and ``server`` are the Kafka and HTTP edges; ``service`` wires them.
"""
