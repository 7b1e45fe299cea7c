"""HubSpot-style tokens in a sandbox: defaults for missing values, never a crash."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.rendering import (
    RenderBudgetExceeded,
    RenderError,
    render,
    with_opt_out,
)

WELCOME = "Hei {{ contact.firstname | default('there') }}! Tervetuloa."


@pytest.mark.parametrize(
    ("contact", "text"),
    [
        ({"firstname": "Aino"}, "Hei Aino! Tervetuloa."),
        ({}, "Hei there! Tervetuloa."),
        ({"firstname": None}, "Hei there! Tervetuloa."),
        ({"firstname": ""}, "Hei there! Tervetuloa."),
        ({"firstname": "  "}, "Hei there! Tervetuloa."),
        ({"firstname": 7}, "Hei 7! Tervetuloa."),
    ],
)
def test_default_applies_to_missing_null_and_blank(contact: dict[str, object], text: str) -> None:
    assert render(WELCOME, contact) == text


def test_missing_property_without_default_renders_nothing() -> None:
    assert render("Hi {{ contact.firstname }}!", {}) == "Hi !"
    assert render("Hi {{ contact.company.name }}!", {}) == "Hi !"
    assert render("{{ contact.firstname | upper }}", {}) == ""


def test_account_and_filters_are_available() -> None:
    text = render(
        "{{ account.id }}: {{ contact.firstname | title }}", {"firstname": "aino"}, {"id": "acme"}
    )
    assert text == "acme: Aino"
    assert render("{% if contact.vip %}VIP {% endif %}ok", {"vip": True}) == "VIP ok"


@pytest.mark.parametrize(
    "body",
    [
        "{{ contact.firstname",  # syntax error
        "{% for %}",
        "{{ range(10**9) | list }}",  # the sandbox caps ranges
        "{{ contact.firstname.__class__.__mro__[1].__subclasses__() }}",
    ],
)
def test_bad_templates_raise_render_error_only(body: str) -> None:
    try:
        text = render(body, {"firstname": "Aino"})
    except RenderError:
        return
    # The sandbox may also neutralise an attribute to nothing instead of raising.
    assert "class" not in text
    assert "subclasses" not in text


def test_sandbox_hides_python_internals() -> None:
    assert render("{{ ''.__class__ }}{{ contact.__class__ }}", {}) == ""


@given(st.text(max_size=80))
def test_any_body_renders_or_raises_render_error(body: str) -> None:
    with contextlib.suppress(RenderError):
        assert isinstance(render(body, {"firstname": "Aino"}), str)


@pytest.mark.parametrize(
    ("text", "opt_out", "expected"),
    [
        ("Hello", "Reply STOP to opt out", "Hello\nReply STOP to opt out"),
        ("Hello  ", "Reply STOP to opt out", "Hello\nReply STOP to opt out"),
        ("Hello. reply stop to opt out", "Reply STOP to opt out", "Hello. reply stop to opt out"),
        ("Hello", None, "Hello"),
        ("Hello", "  ", "Hello"),
        ("", "Reply STOP to opt out", "Reply STOP to opt out"),
    ],
)
def test_opt_out_text_appended_once(text: str, opt_out: str | None, expected: str) -> None:
    assert with_opt_out(text, opt_out) == expected


@pytest.mark.parametrize(
    ("body", "bound"),
    [
        ("{% for a in contact.s %}{% for b in contact.s %}{% endfor %}{% endfor %}", "loop"),
        (
            "{% for i in range(contact.n // 20) %}{% for j in range(contact.n // 20) %}"
            "{% endfor %}{% endfor %}",
            "loop",
        ),
        ("{{ contact.s * contact.n }}", "'*'"),
        ("{{ [contact.s] * contact.n }}", "'*'"),
        ("{{ contact.n ** contact.n }}", "'**'"),
        ("{{ ('%' ~ contact.n ~ 's') % 'x' }}", "format width"),
        ("{{ '%*s' % (contact.n, 'x') }}", "'*' widths"),
        ("{{ '%s'|format(contact.s)|center(contact.n) }}", "center"),
        ("{{ contact.s|indent(contact.n, true) }}", "indent"),
        ("{{ contact.s ~ contact.s ~ contact.s ~ contact.s }}", "the output"),
        ("{{ contact.s|replace('', contact.s) }}", "replace"),
        ("{{ contact.s|join(contact.s) }}", "join"),
        ("{{ range(contact.n // 20)|join(',') }}", "loop"),
    ],
)
def test_contact_data_cannot_drive_a_render_past_its_budget(body: str, bound: str) -> None:
    contact = {"s": "x" * 3000, "n": 10**6}
    started = time.perf_counter()
    with pytest.raises(RenderBudgetExceeded, match=re.escape(bound)):
        render(body, contact)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "body",
    [
        "{{ contact.s.center(contact.n) }}",
        "{{ contact.s.replace('', contact.s) }}",
        "{{ contact.s.join(contact.s) }}",
        "{{ ('{:>' ~ contact.n ~ '}').format('x') }}",
    ],
)
def test_unbounded_string_methods_are_not_reachable(body: str) -> None:
    with pytest.raises(RenderError):
        render(body, {"s": "x" * 100, "n": 10**9})


def test_ordinary_loops_and_repetition_still_render() -> None:
    body = "{% for c in contact.s %}{{ loop.index }}{{ c }}{% endfor %} {{ '-' * 3 }} {{ 2 ** 8 }}"
    assert render(body, {"s": "abc"}) == "1a2b3c --- 256"
    assert render("{{ '%s!' % contact.s }} {{ '%5.1f'|format(1.25) }}", {"s": "hi"}) == "hi!   1.2"
    assert render("{{ contact.s|replace('a', 'o') }} {{ [1, 2]|join('+') }}", {"s": "aa"}) == (
        "oo 1+2"
    )
