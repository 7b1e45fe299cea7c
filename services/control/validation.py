"""Everything ``smsflow apply`` checks before publishing anything: shape, then references."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import TypeAdapter, ValidationError

from schemas.definitions import Document
from services.common.catalog import Catalog
from services.control.problems import Problem, from_validation_error, problem
from services.control.references import Definition, Parsed, check_batch
from services.control.sources import SourceDocument

DOCUMENT: TypeAdapter[Definition] = TypeAdapter(Document)


def parse(sources: Iterable[SourceDocument]) -> tuple[list[Parsed], list[Problem]]:
    parsed: list[Parsed] = []
    problems: list[Problem] = []
    for source in sources:
        if not isinstance(source.data, dict):
            problems.append(
                problem(
                    source,
                    (),
                    f"a document must be a mapping, not {type(source.data).__name__}",
                    "start the document with apiVersion: smsflow/v1, kind, metadata and spec",
                )
            )
            continue
        try:
            parsed.append(Parsed(source, DOCUMENT.validate_python(source.data)))
        except ValidationError as exc:
            problems += from_validation_error(source, exc)
    return parsed, problems


def validate(
    sources: Iterable[SourceDocument], published: Catalog
) -> tuple[list[Parsed], list[Problem]]:
    """The parsed batch and every problem found; publish only when there are none."""
    parsed, problems = parse(sources)
    problems += check_batch(parsed, published)
    return parsed, problems
