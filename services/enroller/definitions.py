"""The current workflow index, kept in step with the definitions view.

The view (a task on the same event loop) applies every definition to its ``Catalog`` and
bumps ``version``; the agent asks ``index()`` before each record and gets a snapshot rebuilt
only when the version moved. Workflows are compiled once per applied document, so rebuilding
after one change to one of a thousand workflows costs the index, not the compilation.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from schemas.definitions import DefinitionApplied, Workflow
from services.common.catalog import Catalog

from .index import CompiledWorkflow, WorkflowIndex, compile_workflow, is_contact_workflow


class Definitions:
    def __init__(self, catalog: Catalog | None = None, lock: Any = None) -> None:
        self.catalog = catalog or Catalog()
        self.lock = lock or threading.Lock()
        # Set once the catalog holds every definition: one fed directly (tests, benchmarks)
        # is complete from the start; one read from the topic takes the view's event.
        self.loaded = asyncio.Event()
        self.loaded.set()
        self.version = 0
        self._index = WorkflowIndex()
        self._compiled: dict[str, tuple[Workflow, CompiledWorkflow]] = {}

    def on_change(self, event: DefinitionApplied | None, key: str) -> None:
        """The view's listener (after the catalog changed)."""
        self.version += 1

    def apply(self, event: DefinitionApplied) -> None:
        """Feed a definition directly (tests, benchmarks)."""
        with self.lock:
            self.catalog.apply(event)
        self.on_change(event, event.key)

    def index(self) -> WorkflowIndex:
        if self._index.version != self.version:
            self._index = self._rebuild()
        return self._index

    def _rebuild(self) -> WorkflowIndex:
        with self.lock:
            version = self.version
            workflows = list(self.catalog.workflows.values())
            zones = {a: acc.spec.time_zone for a, acc in self.catalog.accounts.items()}
            regions = {a: acc.spec.default_region for a, acc in self.catalog.accounts.items()}
            revisions = dict(self.catalog.revisions)
        compiled: list[CompiledWorkflow] = []
        keep: dict[str, tuple[Workflow, CompiledWorkflow]] = {}
        for workflow in workflows:
            if not is_contact_workflow(workflow):
                continue
            cached = self._compiled.get(workflow.key)
            if cached is None or cached[0] is not workflow:
                cached = (workflow, compile_workflow(workflow, revisions.get(workflow.key, 1)))
            keep[workflow.key] = cached
            compiled.append(cached[1])
        self._compiled = keep
        return WorkflowIndex.build(compiled, zones, version=version, regions=regions)
