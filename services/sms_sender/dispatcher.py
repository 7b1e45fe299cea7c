"""Sending requests: the ledger decides, the gateway is called, outcomes are recorded.

Runs on one asyncio loop, so the in-memory ledger needs no locks: every change is applied
in memory first (later changes see it), then written to ``sms-ledger`` and acknowledged,
then announced on ``sms-status``. ``sending`` is acknowledged before the gateway is called;
an offset is finished only once the key's outcome is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import structlog

from schemas.dead_letters import DeadLetter
from schemas.ledger import SETTLED_STATES, LedgerState, SmsLedgerEntry
from schemas.sms import ProviderOptOut, SkipReason, SmsRequest
from services.common.logging import get_logger
from services.sms_sender import ledger as rules
from services.sms_sender.callbacks import DeliveryReport, apply_report
from services.sms_sender.circuit_breaker import CircuitBreaker
from services.sms_sender.gateway import (
    Accepted,
    Ambiguous,
    Refused,
    Rejected,
    SendOutcome,
    SmsGateway,
)
from services.sms_sender.ledger import Ledger
from services.sms_sender.metrics import Metrics
from services.sms_sender.offsets import OffsetTracker
from services.sms_sender.opt_outs import OptOutView
from services.sms_sender.publisher import Publisher, until_written
from services.sms_sender.rate_limiter import RateLimiter
from services.sms_sender.retries import (
    GATEWAY_UNAVAILABLE,
    UNREACHABLE,
    AwaitCallback,
    Retry,
    RetryPolicy,
    Wait,
    next_step,
)
from services.sms_sender.statuses import advance, deferred_event, new_entry, opt_out_event
from services.sms_sender.statuses import transition_events as announce

log = get_logger("sms_sender")
S = LedgerState


class Released(enum.Enum):
    """The partition was revoked before the gateway was called: the next owner sends."""

    RELEASED = "released"


class Contended(enum.Enum):
    """Another instance's claim was written first: wait for it, then plan again."""

    CONTENDED = "contended"


RELEASED = Released.RELEASED
CONTENDED = Contended.CONTENDED
RELEASED_REASON = "released"


@dataclass(frozen=True)
class Job:
    partition: int
    offset: int
    request: SmsRequest | None = None
    dead_letter: DeadLetter | None = None  # an undecodable record, to be dead-lettered


class Dispatcher:
    def __init__(
        self,
        *,
        gateway: SmsGateway,
        publisher: Publisher,
        tracker: OffsetTracker,
        public_url: str,
        policy: RetryPolicy,
        limiter: RateLimiter,
        ambiguous_wait_s: float,
        metrics: Metrics | None = None,
        ledger: Ledger | None = None,
        rng: random.Random | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
        opt_outs: OptOutView | None = None,
        breaker: CircuitBreaker | None = None,
        replay_window_s: float = float("inf"),
        owns: Callable[[int], bool] = lambda _: True,
        writer: str = "",
        generation: Callable[[int], int] = lambda _: 0,
        claim_wait_s: float = 20.0,
    ) -> None:
        self.gateway = gateway
        self.publisher = publisher
        self.tracker = tracker
        self.callback_base = public_url.rstrip("/") + "/webhooks/status?ik="
        self.policy = policy
        self.limiter = limiter
        self.ambiguous_wait_s = ambiguous_wait_s
        self.metrics = metrics or Metrics()
        self.ledger = ledger or Ledger()
        self.rng = rng or random.Random()
        self.on_crash = on_crash
        self.opt_outs = opt_outs or OptOutView()
        self.breaker = breaker or CircuitBreaker()
        # How long the gateway remembers an Idempotency-Key (its replay window).
        self.replay_window_s = replay_window_s
        # Whether this instance still owns a partition of sms-requests (read before each call).
        self.owns = owns
        # This instance's id and its assignment generation of a partition, on every claim.
        self.writer = writer
        self.generation = generation
        self._changed: dict[str, asyncio.Event] = {}  # keys waiting on another's claim
        # A live writer's claim changes within one gateway call (nothing suspends between
        # the claim and the call); one older than this belongs to a writer that died.
        self.claim_wait_s = claim_wait_s
        # Set (and replaced) when the breaker closes, so held-back requests go at once.
        self._gateway_back = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._settled: dict[str, asyncio.Event] = {}
        self._active: dict[str, asyncio.Future[None]] = {}  # keys being handled here now
        # Requests only waiting for a callback: they hold their offset, not a sending slot.
        self.waiting = 0

    # ------------------------------------------------------------ entry points

    def submit(self, jobs: list[Job]) -> None:
        """Start handling ``jobs`` (called by the request consumer, on the loop)."""
        for job in jobs:
            task = asyncio.get_running_loop().create_task(self.handle(job))
            self.tasks.add(task)
            task.add_done_callback(self._task_done)

    async def handle(self, job: Job) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            service="sms-sender", partition=job.partition, offset=job.offset
        )
        if job.request is not None:
            if await self.send_request(job.request, job.partition) is RELEASED:
                # Revoked before the call: the next owner handles it from the committed
                # offset, which must therefore stay below this one.
                self.tracker.abandon(job.partition, job.offset)
                return
        elif job.dead_letter is not None:
            await self.publisher.dead_letter(job.dead_letter)
            self.metrics.dead_letters.inc()
            log.warning("request_dead_lettered", reason=job.dead_letter.reason)
        self.tracker.finish(job.partition, job.offset)
        self.metrics.in_flight.set(self.tracker.pending())
        self.metrics.ledger_keys.set(len(self.ledger))

    def apply_remote(self, batch: list[tuple[SmsLedgerEntry, int]]) -> None:
        """Entries other senders wrote, read from ``sms-ledger``."""
        for entry, partition in batch:
            if self.ledger.apply(entry, partition):
                self._wake(entry)
        self.metrics.ledger_keys.set(len(self.ledger))

    async def report_delivery(self, report: DeliveryReport) -> str:
        """A delivery callback: ``recorded``, ``ignored`` (repeat, stale) or ``unmatched``."""
        key = report.idempotency_key or self.ledger.key_for_provider_id(report.provider_message_id)
        entry = self.ledger.get(key) if key else None
        partition = self.ledger.partition_of(key) if key else None
        if entry is None or partition is None:
            return "unmatched"
        new = apply_report(entry, report)
        if new is None or not await self._record(new, partition):
            return "ignored"
        return "recorded"

    # ------------------------------------------------------------ one request

    async def send_request(self, request: SmsRequest, partition: int) -> Released | None:
        key = request.idempotency_key
        structlog.contextvars.bind_contextvars(idempotency_key=key, to_masked=request.to_masked)
        # A duplicate of a request still being handled waits for it, then finds it settled.
        while (active := self._active.get(key)) is not None:
            await active
        done = self._active[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._handle_request(request, partition)
        finally:
            del self._active[key]
            done.set_result(None)

    async def _handle_request(self, request: SmsRequest, partition: int) -> Released | None:
        key = request.idempotency_key
        while True:
            claim = self.ledger.get(key)
            if claim is not None and rules.foreign_claim(claim, self.writer):
                # Another instance is sending it (it owned the partition before): wait until
                # that claim is settled or released; if its writer died, plan as after a crash.
                deadline = claim.occurred_at.timestamp() + self.claim_wait_s
                if await self._await_change(claim, deadline):
                    continue
            plan = rules.plan(
                self.ledger.get(key), self.ambiguous_wait_s, datetime.now(UTC), self.replay_window_s
            )
            if not isinstance(plan, rules.Send):
                break
            result = await self._send(request, partition, plan)
            if result is RELEASED:
                return RELEASED
            if result is not CONTENDED:
                break
        if isinstance(plan, rules.Skip):
            await self._announce_again(plan.entry, request)
            self.metrics.requests.labels("duplicate").inc()
            log.info("sms_duplicate_skipped", state=plan.entry.state.value)
            return None
        if isinstance(plan, rules.Await):
            await self._await_outcome(plan.entry, partition, plan.deadline)
        final = self.ledger.get(key)
        state = final.state.value if final else "none"
        self.metrics.requests.labels(state).inc()
        log.info(
            f"sms_{state}",
            attempts=final.attempts if final else 0,
            reason=final.reason if final else None,
            error_code=final.error_code if final else None,
        )
        return None

    async def _send(
        self, request: SmsRequest, partition: int, plan: rules.Send
    ) -> Released | Contended | None:
        key = request.idempotency_key
        attempt, ambiguous_before = plan.attempts, plan.ambiguous_before
        counted = plan.attempts  # attempts that count against the limit (not outage waits)
        deferrals = 0
        while True:
            if await self._gateway_ready(request, attempt, deferrals == 0):
                deferrals += 1
            # Paced after the breaker's wait: a backlog that waited out an outage drains
            # within the rate limit, not all at once when the gateway is back.
            await self._pace(request)
            if self.breaker.holding(time.monotonic()):
                continue  # the breaker opened while this one was paced
            if not self.owns(partition):
                log.info("sms_left_to_new_owner")  # revoked: its next owner starts over
                return RELEASED
            attempt += 1
            current = self.ledger.get(key)
            sending = new_entry(
                request,
                S.SENDING,
                api=self.gateway.api,
                attempts=attempt,
                first_attempt_at=(current and current.first_attempt_at) or datetime.now(UTC),
                writer=self.writer,
                generation=self.generation(partition),
            )
            if not await self._record(sending, partition):
                latest = self.ledger.get(key)
                if latest is not None and latest.state in SETTLED_STATES:
                    return None  # settled meanwhile (a callback or another sender)
                return CONTENDED  # another instance claimed it first: wait for its claim
            # The last moment: a STOP may have arrived while this request queued or waited.
            if self.opt_outs.opted_out(request.account_id, request.to):
                skipped = advance(sending, S.SKIPPED, reason=SkipReason.OPTED_OUT.value)
                await self._record(skipped, partition)
                return None
            if not self.owns(partition):
                # Revoked while the claim was written: release it so the next owner, which
                # waits for it, sends instead; nothing left here.
                released = advance(sending, S.RETRYING, reason=RELEASED_REASON)
                await self._record(released, partition)
                log.info("sms_claim_released")
                return RELEASED
            # No suspension between the ownership check above and the call below.
            started = time.monotonic()
            outcome = await self.gateway.send(request, self.callback_base + quote(key, safe=""))
            self._observe(outcome, started)
            now = datetime.now(UTC)
            step = next_step(
                outcome,
                attempt=counted + 1,
                dedupes=self.gateway.dedupes,
                policy=self.policy,
                rng=self.rng,
                ambiguous_before=ambiguous_before,
                age_s=(now - request.occurred_at).total_seconds(),
                replay_safe=rules.replay_safe(self.ledger.get(key), now, self.replay_window_s),
            )
            current = self.ledger.get(key) or sending
            if isinstance(step, Retry | Wait):
                if isinstance(outcome, Ambiguous):
                    ambiguous_before = True  # stays "sending": a resend must reuse the key
                else:
                    await self._record(advance(current, S.RETRYING, reason=step.reason), partition)
                if isinstance(step, Wait):
                    deferrals += 1
                    until = now + timedelta(seconds=step.delay_s)
                    event = deferred_event(current, step.reason, until, deferrals)
                    await self.publisher.statuses([event])
                else:
                    counted += 1
                log.debug("sms_retry_scheduled", delay_s=round(step.delay_s, 3), why=step.reason)
                await asyncio.sleep(step.delay_s)
                continue
            if isinstance(step, AwaitCallback):
                unknown = advance(current, S.UNKNOWN, reason=step.reason)
                await self._record(unknown, partition)
                deadline = unknown.occurred_at.timestamp() + self.ambiguous_wait_s
                await self._await_outcome(unknown, partition, datetime.fromtimestamp(deadline, UTC))
                return None
            if step.accepted is not None:
                done = advance(
                    current,
                    S.SENT,
                    provider_message_id=step.accepted.provider_message_id,
                    reason=None,
                    error_code=None,
                )
            else:
                done = advance(current, S.FAILED, reason=step.reason, error_code=step.error_code)
            if await self._record(done, partition) and step.rejected and step.rejected.opted_out:
                await self._report_opt_out(opt_out_event(done, request))
            return None

    async def _await_change(self, entry: SmsLedgerEntry, deadline: float) -> bool:
        """Wait until the key's entry is no longer ``entry``; False at ``deadline``."""
        key = entry.idempotency_key
        event = self._changed.setdefault(key, asyncio.Event())
        self.waiting += 1
        try:
            while self.ledger.get(key) is entry:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
                event.clear()
            return True
        finally:
            self.waiting -= 1
            self._changed.pop(key, None)

    async def _gateway_ready(self, request: SmsRequest, attempts: int, announce: bool) -> bool:
        """Wait while the circuit breaker holds calls back; True when this SMS waited and a
        ``deferred`` (gateway_unavailable) status said so."""
        wait = self.breaker.wait_s(time.monotonic())
        if wait <= 0:
            return False
        if announce:
            entry = self.ledger.get(request.idempotency_key) or new_entry(
                request, S.RETRYING, api=self.gateway.api, attempts=attempts
            )
            until = datetime.now(UTC) + timedelta(seconds=wait)
            await self.publisher.statuses([deferred_event(entry, GATEWAY_UNAVAILABLE, until, 0)])
        while wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gateway_back.wait(), wait)
            wait = self.breaker.wait_s(time.monotonic())
        return announce

    def _observe(self, outcome: SendOutcome, started: float) -> None:
        now = time.monotonic()
        self.metrics.gateway_seconds.observe(now - started)
        self.metrics.gateway_calls.labels(type(outcome).__name__.lower()).inc()
        answered = isinstance(outcome, Accepted | Rejected) or (
            isinstance(outcome, Refused) and outcome.reason not in UNREACHABLE
        )
        if answered:
            if self.breaker.is_open:
                log.info("gateway_circuit_closed")
                self._gateway_back.set()
                self._gateway_back = asyncio.Event()
            self.breaker.succeeded(now)
            return
        was_open = self.breaker.is_open
        self.breaker.failed(now)
        if self.breaker.is_open and not was_open:
            why = outcome.reason if isinstance(outcome, Refused | Ambiguous) else "?"
            log.warning("gateway_circuit_opened", failures=self.breaker.failures, last=why)

    async def _await_outcome(
        self, entry: SmsLedgerEntry, partition: int, deadline: datetime
    ) -> None:
        """Wait for a callback (or another sender) to settle the key, else fail it."""
        key = entry.idempotency_key
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        current = self.ledger.get(key)
        if current is not None and current.state in SETTLED_STATES:
            return
        event = self._settled.setdefault(key, asyncio.Event())
        self.waiting += 1
        try:
            await asyncio.wait_for(event.wait(), timeout=max(remaining, 0.0))
        except TimeoutError:
            latest = self.ledger.get(key) or entry
            failed = advance(latest, S.FAILED, reason=rules.AMBIGUOUS_OUTCOME)
            await self._record(failed, partition)
        finally:
            self.waiting -= 1
            self._settled.pop(key, None)

    # ------------------------------------------------------------ helpers

    async def _record(self, new: SmsLedgerEntry, partition: int) -> bool:
        """Apply in memory, write to the ledger (acknowledged), announce; False if stale."""
        old = self.ledger.get(new.idempotency_key)
        if not self.ledger.apply(new, partition):
            return False
        self._wake(new)
        await self.publisher.ledger(new, partition)
        events = announce(old, new)
        if events:
            await self.publisher.statuses(events)
        return True

    async def _announce_again(self, entry: SmsLedgerEntry, request: SmsRequest) -> None:
        """A settled key seen again: repeat its status events (same ``event_id``s), in case the
        process died between the ledger write and the status write. A delivery report may
        have moved the key on since, so ``sent`` is repeated before ``delivered`` too."""
        await self.publisher.statuses(announce(None, entry))
        if entry.state is S.FAILED and entry.error_code == "21610":
            await self._report_opt_out(opt_out_event(entry, request))

    async def _report_opt_out(self, event: ProviderOptOut) -> None:
        await until_written(lambda: self.publisher.inbound(event), "sms-inbound")

    async def _pace(self, request: SmsRequest) -> None:
        wait = self.limiter.reserve(request.from_, request.segments, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)

    def _wake(self, entry: SmsLedgerEntry) -> None:
        changed = self._changed.get(entry.idempotency_key)
        if changed is not None:
            changed.set()
        if entry.state in SETTLED_STATES:
            event = self._settled.get(entry.idempotency_key)
            if event is not None:
                event.set()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("request_crashed", error=repr(error))
            if self.on_crash is not None:
                self.on_crash(error)
