"""Apply-time checks across documents (A5): references, subscription types, SMS bodies.

Pure: takes the batch and the catalog already published, returns problems; no I/O.
A document in the batch replaces the published one with the same key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from schemas.definitions import (
    Account,
    Delivery,
    ManageSubscription,
    MessageState,
    SendSms,
    SmsMessage,
    Workflow,
    action_paths,
)
from schemas.subscriptions import LegalBasis
from services.common.catalog import Catalog
from services.control.problems import Problem, problem
from services.control.sources import SourceDocument
from services.control.stranding import stranding_problems

Definition = Account | SmsMessage | Workflow


@dataclass(frozen=True)
class Parsed:
    source: SourceDocument
    document: Definition


def check_batch(batch: Iterable[Parsed], published: Catalog) -> list[Problem]:
    items = list(batch)
    problems = _duplicates(items)
    view = overlay(published, (item.document for item in items))
    for item in items:
        doc = item.document
        if isinstance(doc, Account):
            problems += _check_account(item.source, doc, view)
        elif isinstance(doc, SmsMessage):
            problems += _check_message(item.source, doc, view)
        elif isinstance(doc, Workflow):
            problems += _check_workflow(item.source, doc, view)
    return problems + stranding_problems(items, view)


def overlay(published: Catalog, documents: Iterable[Definition]) -> Catalog:
    """The catalog as it will be once ``documents`` are applied (the published one unchanged)."""
    view = Catalog(
        accounts=dict(published.accounts),
        messages=dict(published.messages),
        workflows=dict(published.workflows),
    )
    for doc in documents:
        if isinstance(doc, Account):
            view.accounts[doc.metadata.id] = doc
        elif isinstance(doc, SmsMessage):
            view.messages[(doc.account_id, doc.metadata.id)] = doc
        else:
            view.workflows[(doc.account_id, doc.metadata.id)] = doc
    return view


def _duplicates(items: list[Parsed]) -> list[Problem]:
    first: dict[str, Parsed] = {}
    problems = []
    for item in items:
        key = item.document.key
        if key in first:
            earlier = first[key].source
            problems.append(
                problem(
                    item.source,
                    ("metadata", "id"),
                    f"{key} is defined twice in this batch (also {earlier.where})",
                    "keep one of the two documents, or give this one another metadata.id",
                )
            )
        else:
            first[key] = item
    return problems


def _account_problem(source: SourceDocument, doc: Definition, view: Catalog) -> list[Problem]:
    if view.account(doc.account_id) is not None:
        return []
    return [
        problem(
            source,
            ("metadata", "account"),
            f"account '{doc.account_id}' does not exist",
            f"apply an Account with metadata.id: {doc.account_id} (in this batch or before), "
            "or correct metadata.account",
        )
    ]


def _subscription_type_problem(
    source: SourceDocument, path: tuple[str | int, ...], type_id: str, account: Account | None
) -> list[Problem]:
    if account is None:
        return []  # already reported as a missing account
    known = [t.id for t in account.spec.subscription_types]
    if type_id in known:
        return []
    listed = ", ".join(known) if known else "none defined"
    return [
        problem(
            source,
            path,
            f"subscription type '{type_id}' is not defined by account '{account.metadata.id}'",
            f"use one of the account's subscription_types ({listed}), or add "
            f"{{id: {type_id}, name: ...}} to the Account's spec.subscription_types",
        )
    ]


def _check_account(source: SourceDocument, doc: Account, view: Catalog) -> list[Problem]:
    """Replies (STOP) find their account by the number they were sent to: one owner each."""
    others = sorted(
        a.metadata.id
        for a in view.accounts.values()
        if a.spec.sender == doc.spec.sender and a.metadata.id != doc.metadata.id
    )
    if not others:
        return []
    return [
        problem(
            source,
            ("spec", "sender"),
            f"sender {doc.spec.sender} is already the sender of account '{others[0]}'; "
            "replies such as STOP could not be told apart",
            "give each account a sender number of its own",
        )
    ]


def _check_message(source: SourceDocument, doc: SmsMessage, view: Catalog) -> list[Problem]:
    problems = _account_problem(source, doc, view)
    problems += _subscription_type_problem(
        source,
        ("spec", "subscription_type"),
        doc.spec.subscription_type,
        view.account(doc.account_id),
    )
    template_error = body_syntax_error(doc.spec.body)
    if template_error is not None:
        problems.append(
            problem(
                source,
                ("spec", "body"),
                f"the body is not a valid template: {template_error}",
                "close every '{{ ... }}' and '{% ... %}', e.g. "
                "{{ contact.firstname | default('there') }}",
            )
        )
    return problems


def _check_workflow(source: SourceDocument, doc: Workflow, view: Catalog) -> list[Problem]:
    problems = _account_problem(source, doc, view)
    account = view.account(doc.account_id)
    for where, action in action_paths(doc.spec.actions):  # nested ones in branches too
        path: tuple[str | int, ...] = ("spec", *where)
        if isinstance(action, ManageSubscription):
            problems += _subscription_type_problem(
                source, (*path, "subscription_type"), action.subscription_type, account
            )
            problems += _legal_basis_problems(source, path, action)
        elif isinstance(action, SendSms):
            problems += _check_send(source, (*path, "message"), doc, action.message, view)
    return problems


COMMUNICATION_BASES = ", ".join(
    b.value for b in LegalBasis if b is not LegalBasis.PROCESS_AND_STORE
)


def _legal_basis_problems(
    source: SourceDocument, path: tuple[str | int, ...], action: ManageSubscription
) -> list[Problem]:
    """HubSpot asks for two bases when subscribing: one for communication, one for processing."""
    problems = []
    if action.legal_basis is LegalBasis.PROCESS_AND_STORE:
        problems.append(
            problem(
                source,
                (*path, "legal_basis"),
                "PROCESS_AND_STORE is a legal basis for processing, not for communication",
                f"set legal_basis to one of {COMMUNICATION_BASES}, and put PROCESS_AND_STORE "
                "in processing_legal_basis",
            )
        )
    if action.status == "subscribed" and action.processing_legal_basis is None:
        problems.append(
            problem(
                source,
                (*path, "processing_legal_basis"),
                "subscribing a contact needs a legal basis for processing",
                "add processing_legal_basis, e.g. PROCESS_AND_STORE",
            )
        )
    return problems


def _check_send(
    source: SourceDocument,
    path: tuple[str | int, ...],
    workflow: Workflow,
    message_id: str,
    view: Catalog,
) -> list[Problem]:
    account_id = workflow.account_id
    message = view.message(account_id, message_id)
    if message is None:
        elsewhere = sorted(a for a, m in view.messages if m == message_id and a != account_id)
        if elsewhere:
            return [
                problem(
                    source,
                    path,
                    f"SMS message '{message_id}' belongs to account '{elsewhere[0]}', "
                    f"not '{account_id}'",
                    f"create the message in account '{account_id}' (metadata.account: "
                    f"{account_id}); a workflow can only send its own account's messages",
                )
            ]
        return [
            problem(
                source,
                path,
                f"SMS message '{message_id}' does not exist in account '{account_id}'",
                "apply an SmsMessage with this metadata.id (in this batch or before), "
                "or correct the message id",
            )
        ]
    if message.spec.state is not MessageState.PUBLISHED:
        return [
            problem(
                source,
                path,
                f"SMS message '{message_id}' is a draft; workflows only send published messages",
                f"set spec.state: published in SmsMessage {account_id}/{message_id} and apply it",
            )
        ]
    if message.spec.delivery is not Delivery.WORKFLOW:
        return [
            problem(
                source,
                path,
                f"SMS message '{message_id}' is not sent as part of a workflow "
                f"(delivery: {message.spec.delivery.value})",
                f"set spec.delivery: workflow in SmsMessage {account_id}/{message_id}",
            )
        ]
    return []


_TEMPLATES = SandboxedEnvironment(autoescape=False)


def body_syntax_error(body: str) -> str | None:
    """Render the body as the action runner will, for a contact with no properties."""
    try:
        from services.common.rendering import RenderError, render
    except ImportError:  # the action runner is not installed alongside: compile only
        try:
            _TEMPLATES.from_string(body)
        except TemplateSyntaxError as exc:
            return f"line {exc.lineno}: {exc.message}"
        return None
    try:
        render(body, contact={}, account={})
    except RenderError as exc:
        return str(exc)
    return None
