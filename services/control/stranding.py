"""Apply-time check that a batch does not strand contacts (issue 12): a change to an Account
or SmsMessage must not break published documents the batch leaves as they are.

- An Account may not drop a subscription type that a published message or an enabled
  workflow (``manage_subscription``) still uses.
- An SmsMessage may not turn back to draft, or to non-workflow delivery, while an enabled
  workflow sends it: contacts waiting at that step would be skipped.

Documents in the batch itself are checked by ``references``; here only the published ones
the batch does not replace. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from schemas.definitions import (
    Account,
    Delivery,
    ManageSubscription,
    MessageState,
    SendSms,
    SmsMessage,
    Workflow,
)
from services.common.catalog import Catalog
from services.control.problems import Problem, problem
from services.control.sources import SourceDocument

if TYPE_CHECKING:
    from services.control.references import Parsed


def stranding_problems(items: Sequence[Parsed], view: Catalog) -> list[Problem]:
    """Problems of the batch ``items`` against ``view``, the catalog once they are applied."""
    in_batch = {item.document.key for item in items}
    workflows = [w for w in view.workflows.values() if w.key not in in_batch]
    problems: list[Problem] = []
    for item in items:
        doc = item.document
        if isinstance(doc, Account):
            messages = [m for m in view.messages.values() if m.key not in in_batch]
            problems += _dropped_types(item.source, doc, messages, workflows)
        elif isinstance(doc, SmsMessage):
            problems += _unsendable(item.source, doc, workflows)
    return problems


def walk(actions: Iterable[Any]) -> Iterator[Any]:
    """Every action, including those nested in branches (``branches[].actions``, ``default``)."""
    for action in actions:
        yield action
        for branch in getattr(action, "branches", None) or ():
            yield from walk(getattr(branch, "actions", None) or ())
        yield from walk(getattr(action, "default", None) or ())


def _users_of_type(
    type_id: str, account_id: str, messages: list[SmsMessage], workflows: list[Workflow]
) -> list[str]:
    users = [
        f"SmsMessage {account_id}/{m.metadata.id}"
        for m in messages
        if m.account_id == account_id
        and m.spec.state is MessageState.PUBLISHED
        and m.spec.subscription_type == type_id
    ]
    users += [
        f"Workflow {account_id}/{w.metadata.id}"
        for w in workflows
        if w.account_id == account_id
        and w.spec.enabled
        and any(
            isinstance(a, ManageSubscription) and a.subscription_type == type_id
            for a in walk(w.spec.actions)
        )
    ]
    return sorted(users)


def _dropped_types(
    source: SourceDocument,
    account: Account,
    messages: list[SmsMessage],
    workflows: list[Workflow],
) -> list[Problem]:
    kept = {t.id for t in account.spec.subscription_types}
    used = {m.spec.subscription_type for m in messages if m.account_id == account.metadata.id}
    used |= {
        a.subscription_type
        for w in workflows
        if w.account_id == account.metadata.id
        for a in walk(w.spec.actions)
        if isinstance(a, ManageSubscription)
    }
    problems = []
    for type_id in sorted(used - kept):
        users = _users_of_type(type_id, account.metadata.id, messages, workflows)
        if not users:
            continue
        problems.append(
            problem(
                source,
                ("spec", "subscription_types"),
                f"subscription type '{type_id}' would be removed but is used by "
                f"{_listed(users)}; their contacts would be stranded",
                f"keep {{id: {type_id}, name: ...}} in spec.subscription_types, or first "
                f"change {_listed(users)} not to use it",
            )
        )
    return problems


def _unsendable(
    source: SourceDocument, message: SmsMessage, workflows: list[Workflow]
) -> list[Problem]:
    if message.spec.state is not MessageState.PUBLISHED:
        field, becomes, keep = "state", "a draft", "spec.state: published"
    elif message.spec.delivery is not Delivery.WORKFLOW:
        field = "delivery"
        becomes = f"a {message.spec.delivery.value} message"
        keep = "spec.delivery: workflow"
    else:
        return []
    senders = sorted(
        f"Workflow {w.account_id}/{w.metadata.id}"
        for w in workflows
        if w.account_id == message.account_id
        and w.spec.enabled
        and any(
            isinstance(a, SendSms) and a.message == message.metadata.id
            for a in walk(w.spec.actions)
        )
    )
    if not senders:
        return []
    return [
        problem(
            source,
            ("spec", field),
            f"SMS message '{message.metadata.id}' would become {becomes} but is sent by enabled "
            f"{_listed(senders)}; contacts waiting at that step would be stranded",
            f"keep {keep}, or first disable {_listed(senders)} (spec.enabled: false) or "
            f"remove the Send SMS of '{message.metadata.id}'",
        )
    ]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
