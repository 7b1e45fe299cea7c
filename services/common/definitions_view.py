"""Keeps a ``Catalog`` current from the compacted ``definitions`` topic, on the event loop.

A ``CompactedView`` reads every partition from the beginning without a consumer group, so
every instance of every service sees all definitions. ``CatalogUpdates`` is the one place
that says what a record of the topic does to a catalog; the synchronous feed that the
command-line tools keep applies records through it too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer

from schemas.definitions import DefinitionApplied, parse_definition_key
from schemas.topics import DEFINITIONS
from services.common.aio_kafka import aiokafka_options
from services.common.catalog import Catalog
from services.common.compacted_view import Change, CompactedView
from services.common.logging import get_logger
from services.common.settings import KafkaSettings

log = get_logger(__name__)

Listener = Callable[[DefinitionApplied | None, str], None]


class CatalogUpdates:
    """Applies records of the topic to ``catalog`` in offset order: a definition replaces
    the one of its key, a tombstone removes it. Records that cannot be read are skipped
    (``smsflow apply`` validates before publishing; anything else is not fatal).
    ``on_change`` is told after each change, outside ``lock``."""

    def __init__(self, catalog: Catalog | None = None, on_change: Listener | None = None) -> None:
        self.catalog = catalog or Catalog()
        self.on_change = on_change
        # Held while the catalog changes, for readers on another thread (a feed read in a
        # thread); on a single event loop nothing else runs meanwhile and it is uncontended.
        self.lock = threading.Lock()

    def __call__(self, changes: Iterable[Change[DefinitionApplied]]) -> None:
        for change in changes:
            if change.unreadable:
                continue  # logged where it was read
            if change.value is None and not _is_definition_key(change.key):
                log.warning("definition_tombstone_rejected", partition=change.partition)
                continue
            key = change.key or ""
            with self.lock:
                if change.value is None:
                    self.catalog.remove(key)
                else:
                    self.catalog.apply(change.value)
            if self.on_change is not None:
                self.on_change(change.value, key)


def _is_definition_key(key: str | None) -> bool:
    if key is None:
        return False
    try:
        parse_definition_key(key)
    except ValueError:
        return False
    return True


class DefinitionsView:
    """The definitions as a task on the running loop. ``loaded`` is set once the topic is
    read up to its end as of ``start()``; a Kafka error (the broker away) does not end the
    view, which carries on from its position once the broker is back."""

    def __init__(
        self,
        settings: KafkaSettings,
        catalog: Catalog | None = None,
        on_change: Listener | None = None,
        *,
        make_client: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
    ) -> None:
        self.updates = CatalogUpdates(catalog, on_change)
        self.catalog = self.updates.catalog
        self.lock = self.updates.lock
        self.view: CompactedView[DefinitionApplied] = CompactedView(
            settings.topic(DEFINITIONS),
            aiokafka_options(settings),
            DefinitionApplied,
            self.updates,
            ride_out_kafka_errors=True,
            make_client=make_client,
        )
        self.loaded = self.view.loaded

    async def start(self, wait_s: float | None = 30.0) -> DefinitionsView:
        """Start reading; with ``wait_s``, return once read to the end (``TimeoutError``
        past it, the view stopped)."""
        try:
            await self.view.start()
            if wait_s is not None:
                try:
                    await asyncio.wait_for(self.loaded.wait(), wait_s)
                except TimeoutError:
                    raise TimeoutError(
                        f"{self.view.topic} not read to its end in {wait_s:g} s"
                    ) from None
        except BaseException:
            await self.view.stop()  # closes the clients a failed start left open
            raise
        if wait_s is not None:
            log.info("definitions_loaded", count=len(self.catalog.revisions))
        return self

    async def stop(self) -> None:
        await self.view.stop()

    async def caught_up(self, timeout_s: float) -> bool:
        """True once every definition written before the call is in the catalog; False
        past the timeout, while the broker is away or when the view is not running."""
        return await self.view.caught_up(timeout_s)
