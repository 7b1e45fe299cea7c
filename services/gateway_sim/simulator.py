"""The simulator's state: settings, faults, idempotency keys, ledger, opt-outs, callbacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .callbacks import report_delivery
from .faults import FaultConfig, FaultInjector
from .idempotency import IdempotencyStore
from .ledger import Ledger, MessageRecord
from .opt_outs import OptOutRegistry
from .settings import SimSettings
from .webhooks import WebhookClient


class Simulator:
    def __init__(self, settings: SimSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(settings.faults, settings.seed)
        self.idempotency = IdempotencyStore(settings.idempotency_ttl_s)
        self.ledger = Ledger()
        self.opt_outs = OptOutRegistry()
        self._webhooks: WebhookClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by reset() so timers of cleared messages do nothing

    @property
    def config(self) -> FaultConfig:
        return self.faults.config

    @property
    def webhooks(self) -> WebhookClient:
        if self._webhooks is None:
            raise RuntimeError("simulator is not started")
        return self._webhooks

    def attach(self, webhooks: WebhookClient) -> None:
        self._webhooks = webhooks

    async def pause(self) -> None:
        """The configured latency, without blocking the loop."""
        latency_ms = self.faults.config.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)

    async def answer_late(self) -> None:
        """Hold the answer past a typical client timeout (the timeout fault)."""
        await asyncio.sleep(self.faults.config.timeout_delay_ms / 1000)

    def accept(self, record: MessageRecord) -> None:
        """Record an accepted message and schedule its delivery callbacks."""
        self.ledger.add_message(record)
        loop = asyncio.get_running_loop()
        if record.status_callback is None:
            # Nothing to post: a timer is much cheaper than a task per message under load.
            self.ledger.set_status(record.id, "sent")
            delay = self.faults.config.callback_delay_ms / 1000
            loop.call_later(delay, self._finish_silently, record.id, self._generation)
            return
        task = loop.create_task(
            report_delivery(
                record,
                ledger=self.ledger,
                webhooks=self.webhooks,
                delay_s=lambda: self.faults.config.callback_delay_ms / 1000,
                outcome=self.faults.delivery,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish_silently(self, message_id: str, generation: int) -> None:
        if generation == self._generation:  # not for messages from before a reset
            outcome = self.faults.delivery()
            self.ledger.set_status(message_id, outcome.status, outcome.error_code)

    def reset(self) -> None:
        """Forget everything and go back to the start-up faults and seed."""
        self._generation += 1
        self.cancel_callbacks()
        self.faults.config = self.settings.faults
        self.faults.reseed(self.settings.seed)
        self.idempotency.clear()
        self.ledger.clear()
        self.opt_outs.clear()

    def cancel_callbacks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        self._generation += 1
        self.cancel_callbacks()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
