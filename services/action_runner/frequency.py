"""Frequency caps (DESIGN A8): at most ``max_messages`` SMS per contact in any rolling
``per_days``, across every workflow of the account.

Pure. A contact's ``SentLog`` (the SMS requested for it, by idempotency key and time) lives
in the runner's ``sent-sms`` table, keyed like the contact: commands for one contact all
arrive on one partition, so the instance that owns that partition sees every send and the
count is right with any number of runner instances. The cap is checked last, once every
other gate (quiet hours, sending windows) lets the SMS go: a deferred SMS counts only when
it is requested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field

from schemas.definitions import FrequencyCap
from schemas.sms import SkipReason
from services.action_runner.gates import Decision, Verdict

# Sends are remembered this long even without a cap (or with a shorter one), so a cap
# added or widened later counts the SMS that went out before it.
KEEP_DAYS = 31


class SentSms(BaseModel):
    idempotency_key: str
    at: AwareDatetime


class SentLog(BaseModel):
    """The SMS requested for one contact within the kept horizon, oldest first."""

    sent: list[SentSms] = Field(default_factory=list)

    def has(self, key: str) -> bool:
        return any(s.idempotency_key == key for s in self.sent)

    def count_since(self, since: datetime) -> int:
        return sum(1 for s in self.sent if s.at > since)


def is_capped(log: SentLog | None, cap: FrequencyCap | None, key: str, now: datetime) -> bool:
    """Whether requesting SMS ``key`` now would exceed ``cap``.

    A key already in the log (a replay, or a re-attempt after a crash) was counted and let
    through once: it is neither counted again nor refused."""
    if cap is None or log is None or log.has(key):
        return False
    return log.count_since(now - timedelta(days=cap.per_days)) >= cap.max_messages


def cap_decision(
    decision: Decision, log: SentLog | None, cap: FrequencyCap | None, key: str, now: datetime
) -> Decision:
    """``decision`` unchanged, or a ``frequency_capped`` skip when a send would exceed ``cap``."""
    if decision.verdict is Verdict.SEND and is_capped(log, cap, key, now):
        return Decision(
            Verdict.SKIP,
            reason=SkipReason.FREQUENCY_CAPPED.value,
            to_masked=decision.to_masked,
            encoding=decision.encoding,
            segments=decision.segments,
        )
    return decision


def record(log: SentLog | None, key: str, now: datetime, cap: FrequencyCap | None) -> SentLog:
    """The log once SMS ``key`` is requested: entries past the horizon dropped, ``key`` added
    once."""
    horizon = now - timedelta(days=max(KEEP_DAYS, cap.per_days if cap else 0))
    kept = [s for s in (log.sent if log else []) if s.at > horizon]
    if not any(s.idempotency_key == key for s in kept):
        kept.append(SentSms(idempotency_key=key, at=now))
    return SentLog(sent=kept)
