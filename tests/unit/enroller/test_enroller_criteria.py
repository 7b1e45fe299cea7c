"""Criteria matching: every operator of DESIGN A5, blanks, OR of AND-groups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.definitions import Filter
from services.enroller.criteria import compile_criteria, compile_filter, matches


def f(prop: str, op: str, value: Any = None, values: list[Any] | None = None) -> Filter:
    return Filter(property=prop, operator=op, value=value, values=values)  # type: ignore[arg-type]


BLANKS = [None, "", "   "]

# (filter, property value, expected)
CASES: list[tuple[Filter, Any, bool]] = [
    # eq / neq: case-insensitive text, numbers as numbers, booleans as booleans
    (f("stage", "eq", "customer"), "customer", True),
    (f("stage", "eq", "customer"), "Customer ", True),
    (f("stage", "eq", "customer"), "lead", False),
    (f("stage", "neq", "customer"), "lead", True),
    (f("stage", "neq", "customer"), "CUSTOMER", False),
    (f("score", "eq", 10), "10", True),
    (f("score", "eq", 10), 10.0, True),
    (f("score", "eq", "10"), 10, True),
    (f("score", "eq", 10), "ten", False),
    (f("hs_marketable_status", "eq", True), "true", True),
    (f("hs_marketable_status", "eq", True), True, True),
    (f("hs_marketable_status", "eq", True), "false", False),
    (f("hs_marketable_status", "eq", "true"), True, True),
    (f("hs_marketable_status", "eq", False), False, True),
    # is_any_of / is_none_of
    (f("stage", "is_any_of", values=["lead", "customer"]), "customer", True),
    (f("stage", "is_any_of", values=["lead", "customer"]), "other", False),
    (f("stage", "is_none_of", values=["lead", "customer"]), "other", True),
    (f("stage", "is_none_of", values=["lead", "customer"]), "Lead", False),
    (f("country", "is_any_of", values=[358, "FI"]), "358", True),
    # contains / not_contains / starts_with
    (f("email", "contains", "@acme."), "aino@ACME.fi", True),
    (f("email", "contains", "@acme."), "aino@example.com", False),
    (f("email", "not_contains", "@acme."), "aino@example.com", True),
    (f("email", "not_contains", "@acme."), "aino@acme.fi", False),
    (f("mobilephone", "starts_with", "+358"), "+358401234567", True),
    (f("mobilephone", "starts_with", "+358"), "0401234567", False),
    # is_known / is_unknown
    (f("email", "is_known"), "a@b.c", True),
    (f("email", "is_known"), 0, True),
    (f("email", "is_known"), False, True),
    (f("email", "is_unknown"), "a@b.c", False),
    # numbers
    (f("score", "gt", 10), 11, True),
    (f("score", "gt", 10), 10, False),
    (f("score", "gt", 10), "9.5", False),
    (f("score", "gt", 9), "10", True),  # numeric, not text ("10" < "9" as text)
    (f("score", "gte", 10), "10", True),
    (f("score", "lt", 10), 9.99, True),
    (f("score", "lt", 10), 10, False),
    (f("score", "lte", 10), 10, True),
    (f("score", "gt", 10), "not a number", False),
    (f("score", "between", values=[5, 10]), 5, True),
    (f("score", "between", values=[5, 10]), 10, True),
    (f("score", "between", values=[5, 10]), 10.01, False),
    (f("score", "between", values=[5, 10]), 4, False),
    # dates: ISO dates, datetimes, epoch milliseconds
    (f("renewal", "before", "2026-12-01"), "2026-11-30", True),
    (f("renewal", "before", "2026-12-01"), "2026-12-01", False),
    (f("renewal", "before", "2026-12-01"), "2026-11-30T23:59:59Z", True),
    (f("renewal", "after", "2026-12-01"), "2026-12-01T00:00:01+00:00", True),
    (f("renewal", "after", "2026-12-01"), 1764547200000, False),  # 2025-12-01 in epoch ms
    (f("renewal", "after", "2025-11-30"), 1764547200000, True),
    (f("renewal", "after", "2026-12-01"), "1796083201000", True),  # 2026-12-01 00:00:01
    (f("renewal", "before", "2026-12-01"), "soon", False),
    (f("renewal", "gt", "2026-01-01"), "2026-06-01", True),
    (f("renewal", "between", values=["2026-01-01", "2026-12-31"]), "2026-06-15", True),
    (f("renewal", "between", values=["2026-01-01", "2026-12-31"]), "2027-01-01", False),
    (f("renewal", "after", 1764547200000), "2026-01-01", True),
    # text ordering when the operand is neither a number nor a date
    (f("name", "gt", "m"), "Noora", True),
    (f("name", "gt", "m"), "Aino", False),
]


@pytest.mark.parametrize(("flt", "value", "expected"), CASES)
def test_filter(flt: Filter, value: Any, expected: bool) -> None:
    assert compile_filter(flt)({flt.property: value}) is expected


NEGATIVE = [
    f("stage", "neq", "customer"),
    f("stage", "is_none_of", values=["customer"]),
    f("stage", "not_contains", "cust"),
    f("stage", "is_unknown"),
]
POSITIVE = [
    f("stage", "eq", "customer"),
    f("stage", "is_any_of", values=["customer"]),
    f("stage", "contains", "cust"),
    f("stage", "starts_with", "c"),
    f("stage", "is_known"),
    f("stage", "gt", 1),
    f("stage", "gte", 1),
    f("stage", "lt", 1),
    f("stage", "lte", 1),
    f("stage", "between", values=[1, 2]),
    f("stage", "before", "2026-01-01"),
    f("stage", "after", "2026-01-01"),
]


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("flt", NEGATIVE)
def test_negative_operators_match_blanks(flt: Filter, blank: Any) -> None:
    """HubSpot: "is not equal to" / "is none of" match a contact with no value."""
    assert compile_filter(flt)({"stage": blank}) is True
    assert compile_filter(flt)({}) is True


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("flt", POSITIVE)
def test_positive_operators_never_match_blanks(flt: Filter, blank: Any) -> None:
    assert compile_filter(flt)({"stage": blank}) is False
    assert compile_filter(flt)({}) is False


def test_or_of_and_groups() -> None:
    criteria = [
        [f("stage", "eq", "customer"), f("country", "eq", "FI")],
        [f("score", "gte", 90)],
    ]
    assert matches(criteria, {"stage": "customer", "country": "FI"})
    assert not matches(criteria, {"stage": "customer", "country": "SE"})
    assert matches(criteria, {"stage": "lead", "score": 95})
    assert not matches(criteria, {"stage": "lead", "score": 50})


def test_empty_criteria_match_nobody() -> None:
    assert not matches([], {"stage": "customer"})
    assert not compile_criteria([])


def test_compiled_criteria_know_their_properties_and_blank_groups() -> None:
    compiled = compile_criteria(
        [[f("stage", "eq", "customer")], [f("email", "is_unknown"), f("phone", "neq", "1")]]
    )
    assert compiled.properties == {"stage", "email", "phone"}
    assert compiled.matches_blank  # the second group matches a contact without properties
    assert not compile_criteria([[f("stage", "eq", "customer")]]).matches_blank


texts = st.text(alphabet="abcXYZ 01", max_size=6)
values = st.one_of(st.none(), texts, st.integers(-5, 5), st.booleans(), st.floats(-10, 10))


@given(operand=texts.filter(lambda t: t.strip() != ""), value=values)
def test_negations_are_exact_complements(operand: str, value: Any) -> None:
    props = {"p": value}
    pairs = [
        (f("p", "eq", operand), f("p", "neq", operand)),
        (f("p", "is_any_of", values=[operand]), f("p", "is_none_of", values=[operand])),
        (f("p", "contains", operand), f("p", "not_contains", operand)),
        (f("p", "is_known"), f("p", "is_unknown")),
    ]
    for positive, negative in pairs:
        assert compile_filter(positive)(props) != compile_filter(negative)(props)


@given(low=st.integers(-50, 50), high=st.integers(-50, 50), value=st.integers(-60, 60))
def test_between_is_gte_and_lte(low: int, high: int, value: int) -> None:
    props = {"n": value}
    both = compile_filter(f("n", "gte", low))(props) and compile_filter(f("n", "lte", high))(props)
    assert compile_filter(f("n", "between", values=[low, high]))(props) is both
