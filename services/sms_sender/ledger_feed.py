"""The sender's views of two compacted topics, each a ``CompactedView`` on the loop:
``sms-ledger`` (rebuilds the ledger at start-up and keeps it current with what other senders
write; own writes are skipped by header) and ``opt-outs`` (the numbers that may no longer be
sent to).

``barrier(partitions)`` returns once the feed has applied those partitions up to their end
offsets as of the call: after it, every record written before is in the view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from schemas.envelope import Event
from schemas.ledger import SmsLedgerEntry
from schemas.sms import NumberOptOut
from schemas.topics import OPT_OUTS, SMS_LEDGER
from services.common.aio_kafka import aiokafka_options
from services.common.compacted_view import Change, CompactedView
from services.common.settings import KafkaSettings
from services.sms_sender.publisher import WRITER_HEADER

M = TypeVar("M", bound=Event)


def _readable(apply: Callable[[list[tuple[M, int]]], None]) -> Callable[[list[Change[M]]], None]:
    """``apply`` given the readable records with their partition: tombstones and records
    that cannot be read (logged by the view) carry nothing to apply here."""

    def take(changes: list[Change[M]]) -> None:
        batch = [(c.value, c.partition) for c in changes if c.value is not None]
        if batch:
            apply(batch)

    return take


def ledger_feed(
    settings: KafkaSettings, writer: str, apply: Callable[[list[tuple[SmsLedgerEntry, int]]], None]
) -> CompactedView[SmsLedgerEntry]:
    return CompactedView(
        settings.topic(SMS_LEDGER),
        aiokafka_options(settings),
        SmsLedgerEntry,
        _readable(apply),
        skip_header=(WRITER_HEADER, writer.encode()),  # written by this process: applied then
    )


def opt_out_feed(
    settings: KafkaSettings, apply: Callable[[list[tuple[NumberOptOut, int]]], None]
) -> CompactedView[NumberOptOut]:
    return CompactedView(
        settings.topic(OPT_OUTS), aiokafka_options(settings), NumberOptOut, _readable(apply)
    )
