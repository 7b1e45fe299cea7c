"""Apply-time problems: where (file, document, field), what is wrong, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.control.sources import Path_, SourceDocument

KINDS = ("Account", "SmsMessage", "Workflow")


@dataclass(frozen=True)
class Problem:
    file: str
    index: int
    line: int
    document: str  # e.g. "Workflow acme/welcome-flow", or "document" when unknown
    field: str  # dotted path such as spec.actions[2].message; "" for the whole document
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: document {self.index} ({self.document})"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}\n    fix: {self.fix}"


def describe(source: SourceDocument) -> str:
    data: dict[str, Any] = source.data if isinstance(source.data, dict) else {}
    kind = data.get("kind") if data.get("kind") in KINDS else "document"
    meta: dict[str, Any] = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
    object_id = meta.get("id")
    account = meta.get("account")
    if object_id is None:
        return str(kind)
    if kind == "Account" or account is None:
        return f"{kind} {object_id}"
    return f"{kind} {account}/{object_id}"


def field_text(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problem(source: SourceDocument, path: Path_, message: str, fix: str) -> Problem:
    return Problem(
        file=str(source.file),
        index=source.index,
        line=source.line_of(path),
        document=describe(source),
        field=field_text(path),
        message=message,
        fix=fix,
    )


def from_validation_error(source: SourceDocument, exc: ValidationError) -> list[Problem]:
    return [_from_error(source, error) for error in exc.errors(include_url=False)]


def _from_error(source: SourceDocument, error: Any) -> Problem:
    path = _data_path(source.data, tuple(error["loc"]))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    field = path[-1] if path else ""
    if kind == "union_tag_invalid" or (kind == "union_tag_not_found" and not path):
        return problem(
            source, ("kind",), "unknown or missing kind", f"set kind to one of: {', '.join(KINDS)}"
        )
    if kind == "literal_error" and path == ("apiVersion",):
        return problem(source, path, message, "set apiVersion: smsflow/v1")
    if kind == "missing":
        return problem(source, path, "required field is missing", f"add '{field}'")
    if kind == "extra_forbidden":
        return problem(
            source, path, f"unknown field '{field}'", "remove it or correct its spelling"
        )
    if "legal_basis_explanation" in message:
        return problem(
            source,
            (*path, "legal_basis_explanation"),
            "subscribing a contact needs an explanation of the legal basis",
            'add legal_basis_explanation, e.g. "Ticked the SMS box at checkout"',
        )
    if "needs a legal_basis" in message:
        return problem(
            source,
            (*path, "legal_basis"),
            "subscribing a contact needs a legal basis for communication",
            "add legal_basis: one of CONSENT_WITH_NOTICE, LEGITIMATE_INTEREST_PQL, "
            "LEGITIMATE_INTEREST_CLIENT, LEGITIMATE_INTEREST_OTHER, PERFORMANCE_OF_CONTRACT, "
            "NON_GDPR",
        )
    if message == "metadata.account is required":
        return problem(
            source,
            (*path, "account"),
            "an SmsMessage or Workflow belongs to an account",
            "add metadata.account: <the id of an Account>",
        )
    if "only contact workflows enroll anyone" in message:
        return problem(
            source,
            (*path, "object_type"),
            message,
            "set spec.object_type: contact (or leave it out); deal, ticket and company "
            "workflows are not supported yet",
        )
    if "is used by more than one action" in message:
        return problem(
            source,
            (*path, "actions"),
            message,
            "give each action an id of its own ([a-z0-9-]), or leave id out to have one "
            "derived from the action's content",
        )
    if kind == "enum" or kind == "literal_error":
        return problem(source, path, message, f"use one of the listed values for '{field}'")
    return problem(source, path, message, f"correct '{field_text(path) or 'the document'}'")


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """pydantic's error location without the union tags it inserts (``'Workflow'``, ...)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == node.get("kind", node.get("type")):
            continue  # a discriminated union's tag
        elif isinstance(part, str) and part in KINDS:
            continue
        else:
            path.append(part)
            node = None
    return tuple(path)
