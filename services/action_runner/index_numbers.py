"""Keeps the number -> contacts index: contact changes (and re-reads when an account's
region arrives or changes) give each contact's numbers; their differences, re-keyed by
number on ``phone-index``, update each number's entry. A contact joining an opted-out
number is opted out too (a wide consent command)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from schemas.contacts import ContactChange
from services.action_runner.emissions import Emission, emit_all
from services.action_runner.internal import (
    CONSENT_COMMANDS,
    PHONE_INDEX,
    PHONE_REINDEX,
    ContactReindex,
    PhoneIndexUpdate,
)
from services.action_runner.parts import Parts
from services.action_runner.phone_index import (
    ContactNumbers,
    NumberEntry,
    apply_update,
    diff_numbers,
    reindex_commands,
    touches_numbers,
)
from services.action_runner.stores import CONTACT_NUMBERS, NUMBERS, dump
from services.common.codec import decode
from services.common.idempotency import emission_id
from services.common.logging import get_logger
from services.common.phones import normalize
from services.common.records import Batch, Handled, Handler

log = get_logger(__name__)


def _index(parts: Parts, batch: Batch, change: ContactChange) -> Handled:
    region = parts.region(change.account_id)
    raw = batch.get(CONTACT_NUMBERS, change.key)
    known = None if raw is None else ContactNumbers.model_validate(raw)
    after, updates = diff_numbers(known, change, lambda value: normalize(value, region), region)
    emit_all(batch, parts.topic, (Emission.of(PHONE_INDEX, u) for u in updates))
    batch.put(CONTACT_NUMBERS, change.key, dump(after))
    return Handled(
        "contact_numbers_indexed",
        {
            "account_id": change.account_id,
            "contact_id": change.contact_id,
            "numbers": len(after.numbers),
            "updates": len(updates),
        },
    )


class IndexContactNumbers(Handler):
    name = "index_contact_numbers"
    stores = (CONTACT_NUMBERS,)

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def decode(self, record: Any) -> ContactChange:
        return decode(ContactChange, record.value)

    async def prepare(self, partition: int, items: Sequence[Any]) -> None:
        # National formats need the account's region: give a new account a moment to arrive
        # (one that comes later has its contacts read again, see watch_regions).
        catalog = self.parts.catalog
        accounts = {c.account_id for c in items if touches_numbers(c)}
        await self.parts.await_known(lambda: all(catalog.account(a) for a in accounts))

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        change: ContactChange = item
        if not touches_numbers(change):
            return Handled("contact_change_skipped", debug=True)
        return _index(self.parts, batch, change)


class ReindexContactNumbers(Handler):
    name = "reindex_contact_numbers"
    stores = (CONTACT_NUMBERS,)

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def decode(self, record: Any) -> ContactReindex:
        return decode(ContactReindex, record.value)

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        command: ContactReindex = item
        change = ContactChange(
            event_id=emission_id(command.event_id, "reindex"),
            account_id=command.account_id,
            contact_id=command.contact_id,
            properties={},
        )
        return _index(self.parts, batch, change)


class UpdateNumberIndex(Handler):
    name = "update_number_index"
    stores = (NUMBERS,)

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def decode(self, record: Any) -> PhoneIndexUpdate:
        return decode(PhoneIndexUpdate, record.value)

    def decide(self, item: Any, record: Any, batch: Batch, context: Any) -> Handled:
        update: PhoneIndexUpdate = item
        raw = batch.get(NUMBERS, update.key)
        entry, command = apply_update(
            None if raw is None else NumberEntry.model_validate(raw), update
        )
        if command is not None:
            emit_all(batch, self.parts.topic, [Emission.of(CONSENT_COMMANDS, command)])
        batch.put(NUMBERS, update.key, dump(entry))
        return Handled(
            "number_index_updated",
            {
                "account_id": update.account_id,
                "contact_id": update.contact_id,
                "phone": update.phone,
                "present": update.present,
                "inherited_opt_out": command is not None,
            },
        )


class RegionWatch:
    """When an account arrives or its default_region changes, has its contacts' numbers read
    again (through ``phone-reindex``: state is written only by the pipeline). An account
    stays "changed" for one more look, for a contact whose index write was in flight."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.indexed: dict[str, str] = {}  # account -> region its contacts were read in
        self._recent: set[str] = set()

    def commands(self, stored: Iterable[tuple[str, Any]]) -> list[ContactReindex]:
        regions = {a: acc.spec.default_region for a, acc in self.parts.catalog.accounts.items()}
        changed = {a for a, r in regions.items() if self.indexed.get(a) != r}
        looking = changed | self._recent
        self._recent = changed
        self.indexed.update({a: regions[a] for a in changed})
        if not looking:
            return []
        return reindex_commands(stored, regions, looking)

    async def run(self, stored: Any, send: Any, ready: Any) -> None:
        """Every second once ``ready()``: ``send`` the commands for ``stored()``."""
        while True:
            await asyncio.sleep(1.0)
            if not ready():
                continue
            try:
                commands = self.commands(stored())
                if commands:
                    await send(PHONE_REINDEX, commands)
                    log.info("contact_numbers_reindex_requested", contacts=len(commands))
            except Exception as exc:  # tried again on the next tick
                log.error("reindex_failed", error=f"{type(exc).__name__}: {exc}")
