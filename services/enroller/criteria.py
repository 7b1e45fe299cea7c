"""Workflow criteria: an OR of AND-groups of property filters, compiled to predicates.

Pure. Each ``Filter`` becomes a closure over pre-parsed operands, so matching a contact
costs a dict look-up and a comparison per filter. Semantics (HubSpot's contact filters):

* a property with no value (missing, ``null`` or empty text) is *blank*;
* positive operators never match a blank; their negations (``neq``, ``is_none_of``,
  ``not_contains``) do, as HubSpot's "is not equal to" / "is none of" match empty values;
* text compares case-insensitively; numbers and dates compare as such when the filter's
  operand is one (dates: ISO date/datetime or epoch milliseconds, date-only = midnight UTC);
* ``between`` is inclusive at both ends;
* an empty criteria list matches nobody (a workflow without triggers enrolls no one).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.contacts import PropertyValue
from schemas.definitions import Filter, Operator, Scalar

from .values import as_bool, as_moment, as_number, as_text, is_blank, looks_like_moment

Properties = Mapping[str, PropertyValue]
Predicate = Callable[[Properties], bool]


@dataclass(frozen=True, slots=True)
class CompiledCriteria:
    groups: tuple[tuple[Predicate, ...], ...]
    properties: frozenset[str]  # every property a filter reads
    # True when some AND-group matches a contact none of whose properties are set: such a
    # group can start matching without any of its properties changing (a new contact).
    matches_blank: bool
    # Per group, per eq/is_any_of filter on text: the (property, text) pairs one of which a
    # contact must hold for the group to match; the most selective filters first.
    anchors: tuple[tuple[frozenset[tuple[str, str]], ...], ...] = ()

    def matches(self, properties: Properties) -> bool:
        for group in self.groups:
            for predicate in group:
                if not predicate(properties):
                    break
            else:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.groups)


NOTHING = CompiledCriteria(groups=(), properties=frozenset(), matches_blank=False)


def compile_criteria(criteria: Sequence[Sequence[Filter]]) -> CompiledCriteria:
    kept = [group for group in criteria if group]
    groups = tuple(tuple(compile_filter(f) for f in group) for group in kept)
    properties = frozenset(f.property for group in kept for f in group)
    blank_groups = (all(p({}) for p in group) for group in groups)
    return CompiledCriteria(
        groups=groups,
        properties=properties,
        matches_blank=any(blank_groups),
        anchors=tuple(_anchors(group) for group in kept),
    )


def _anchors(group: Sequence[Filter]) -> tuple[frozenset[tuple[str, str]], ...]:
    """For each filter the group requires that compares as plain text: its (property, text)
    values, one of which a matching contact holds.

    Only text operands qualify (no booleans, no numbers): for those, ``eq``/``is_any_of``
    holds exactly when ``as_text(value)`` is one of the operands' texts.
    """
    found: list[frozenset[tuple[str, str]]] = []
    for f in group:
        if f.operator not in (Operator.EQ, Operator.IS_ANY_OF):
            continue
        operands = [v for v in [f.value, *(f.values or [])] if v is not None]
        if not operands or not all(isinstance(v, str) and as_number(v) is None for v in operands):
            continue
        pairs = frozenset((f.property, as_text(v)) for v in operands if as_text(v))
        if pairs:
            found.append(pairs)
    return tuple(sorted(found, key=len))


def matches(criteria: Sequence[Sequence[Filter]], properties: Properties) -> bool:
    """Uncompiled convenience (tests, one-off checks)."""
    return compile_criteria(criteria).matches(properties)


# ---------------------------------------------------------------- one filter


def compile_filter(f: Filter) -> Predicate:
    name, op = f.property, f.operator
    if op is Operator.IS_KNOWN:
        return lambda props: not is_blank(props.get(name))
    if op is Operator.IS_UNKNOWN:
        return lambda props: is_blank(props.get(name))
    if op in (Operator.EQ, Operator.NEQ, Operator.IS_ANY_OF, Operator.IS_NONE_OF):
        operands = [f.value] if f.values is None else list(f.values)
        if f.value is not None and f.values:
            operands = [f.value, *f.values]
        equal = _equality(name, [v for v in operands if v is not None])
        if op in (Operator.EQ, Operator.IS_ANY_OF):
            return equal
        return lambda props: not equal(props)
    if op in (Operator.CONTAINS, Operator.NOT_CONTAINS, Operator.STARTS_WITH):
        needle = as_text(_single(f))
        if op is Operator.STARTS_WITH:
            return _text_test(name, lambda text: text.startswith(needle))
        contains = _text_test(name, lambda text: needle in text)
        if op is Operator.CONTAINS:
            return contains
        return lambda props: not contains(props)
    if op is Operator.BETWEEN:
        low, high = f.values or (None, None)
        return _ordered(name, low, operator.ge, high, operator.le)
    if op in (Operator.GT, Operator.AFTER):
        return _ordered(name, _single(f), operator.gt, force_moment=op is Operator.AFTER)
    if op is Operator.GTE:
        return _ordered(name, _single(f), operator.ge)
    if op in (Operator.LT, Operator.BEFORE):
        return _ordered(name, _single(f), operator.lt, force_moment=op is Operator.BEFORE)
    if op is Operator.LTE:
        return _ordered(name, _single(f), operator.le)
    raise ValueError(f"unsupported operator {op}")  # pragma: no cover - the enum is closed


def _single(f: Filter) -> Scalar:
    if f.value is not None:
        return f.value
    if f.values:
        return f.values[0]
    raise ValueError(f"operator {f.operator.value} needs a value")  # pragma: no cover


def _equality(name: str, operands: list[Scalar]) -> Predicate:
    bools = {v for v in operands if isinstance(v, bool)}
    numbers = {float(v) for v in operands if isinstance(v, int | float) and not isinstance(v, bool)}
    texts = {as_text(v) for v in operands if isinstance(v, str)}
    # "10" in a filter equals 10 on a contact and the other way round.
    numbers |= {n for n in (as_number(v) for v in operands if isinstance(v, str)) if n is not None}

    if texts and not bools and not numbers:
        # The common case (text operands only), kept to a look-up and one comparison.
        def equal_text(props: Properties) -> bool:
            value = props.get(name)
            if value is None:
                return False
            if type(value) is str:
                return value.strip().casefold() in texts  # blank "" is never an operand
            return as_text(value) in texts

        texts.discard("")
        return equal_text

    def equal(props: Properties) -> bool:
        value = props.get(name)
        if is_blank(value):
            return False
        if bools:
            flag = as_bool(value)
            if flag is not None and flag in bools:
                return True
        if numbers:
            number = as_number(value)
            if number is not None and number in numbers:
                return True
        return bool(texts) and as_text(value) in texts

    return equal


def _text_test(name: str, test: Callable[[str], bool]) -> Predicate:
    def predicate(props: Properties) -> bool:
        value = props.get(name)
        return not is_blank(value) and test(as_text(value))

    return predicate


Key = float | datetime | str
Compare = Callable[[Any, Any], bool]


def _ordered(
    name: str,
    operand: Scalar | None,
    compare: Compare,
    operand2: Scalar | None = None,
    compare2: Compare | None = None,
    *,
    force_moment: bool = False,
) -> Predicate:
    """A comparison read as dates, numbers or text depending on the filter's operand."""
    operands = [operand] if compare2 is None else [operand, operand2]
    reader: Callable[[PropertyValue], Key | None]
    keys: list[Key | None]
    if force_moment or all(looks_like_moment(v) for v in operands):
        reader, keys = as_moment, [as_moment(v) for v in operands]
    elif all(as_number(v) is not None for v in operands):
        reader, keys = as_number, [as_number(v) for v in operands]
    else:
        reader, keys = as_text, [as_text(v) for v in operands]
    if any(k is None for k in keys):
        return lambda props: False  # an operand that cannot be read matches nothing
    first = keys[0]
    second = keys[-1]

    def predicate(props: Properties) -> bool:
        value = props.get(name)
        if is_blank(value):
            return False
        key = reader(value)
        if key is None:
            return False
        try:
            if not compare(key, first):
                return False
            return compare2 is None or compare2(key, second)
        except TypeError:  # e.g. a moment against text: not comparable, no match
            return False

    return predicate
