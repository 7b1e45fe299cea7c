"""Which workflows were just turned on (for ``enroll_existing``), per partition.

Pure. Each partition's owner keeps a small durable record ``{account/workflow: enabled}``
of the definitions it has acted on. A workflow that is enabled, has ``enroll_existing``,
and was disabled or unknown in that record has been turned on (or first applied): its
contacts on that partition are scanned once, and the record is updated afterwards, so a
restart neither repeats a finished scan nor loses an unfinished one.
"""

from __future__ import annotations

from .index import CompiledWorkflow, WorkflowIndex

Marks = dict[str, bool]


def mark_name(workflow: CompiledWorkflow) -> str:
    return f"{workflow.account_id}/{workflow.workflow_id}"


def turned_on(index: WorkflowIndex, marks: Marks) -> tuple[list[CompiledWorkflow], Marks]:
    """The workflows to scan, and the record to keep once they are scanned."""
    to_scan: list[CompiledWorkflow] = []
    updated: Marks = {}
    for account in index.accounts.values():
        for workflow in account.workflows.values():
            name = mark_name(workflow)
            if workflow.enabled and workflow.enroll_existing and not marks.get(name):
                to_scan.append(workflow)
            updated[name] = workflow.enabled
    return to_scan, updated
