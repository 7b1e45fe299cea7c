"""SMS bodies from HubSpot-style personalization tokens, in a sandboxed Jinja2 environment.

``{{ contact.firstname | default('there') }}``: a property the contact lacks (absent,
null or blank) renders its default, or nothing; a template never reaches the file system,
attributes of Python objects or anything else outside the values it is given.

A render is also bounded, because a contact's data drives it and the apply-time check
cannot see that data: at most ``MAX_LOOP_STEPS`` loop iterations in all (every ``for`` is
rewritten to count its steps), ``*``, ``**``, ``%`` and the padding, ``replace`` and
``join`` filters refused when their result would pass the output cap (the string methods
of those names are not reachable), and the output itself cut off at ``MAX_OUTPUT_CHARS``.
Past a bound the render stops with ``RenderBudgetExceeded``: that SMS is skipped and the
runner goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes, pass_eval_context
from jinja2.filters import do_center, do_format, do_indent, do_replace, sync_do_join
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

OPT_OUT_SEPARATOR = "\n"
# Far above any SMS (Twilio takes 1,600 characters), far below what would stall the loop.
MAX_OUTPUT_CHARS = 10_000
MAX_LOOP_STEPS = 10_000
# printf-style widths and precisions: "%10s", "%-*d", "%.5f".
_PRINTF_WIDTHS = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# String methods whose output size the cap could only check after building it.
_UNBOUNDED_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "format", "format_map"}
)
_LOOP_STEPS: ContextVar[list[int]] = ContextVar("loop_steps")


class RenderError(ValueError):
    """The body could not be rendered (a syntax error, a sandbox violation)."""


class RenderBudgetExceeded(RenderError):
    """The render would take more output or loop steps than a render may."""


class _Blank(ChainableUndefined):
    """A missing value: renders as nothing, and so does any attribute of it."""

    def __str__(self) -> str:
        return ""


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    # HubSpot treats an empty or cleared property like a missing one.
    if isinstance(value, _Blank) or value is None or (isinstance(value, str) and not value.strip()):
        return default_value
    if boolean and not value:
        return default_value
    return value


def _check_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderBudgetExceeded(f"{what} would exceed {MAX_OUTPUT_CHARS} characters")


def _budgeted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    steps = _LOOP_STEPS.get()
    for item in iterable:
        steps[0] -= 1
        if steps[0] < 0:
            raise RenderBudgetExceeded(f"more than {MAX_LOOP_STEPS} loop iterations")
        yield item


def _check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_WIDTHS.findall(fmt):
        for value in (width, precision):
            if value == "*":
                raise RenderBudgetExceeded("'*' widths are not allowed in formats")
            if value:
                _check_size(int(value), "a format width")


def _center(value: Any, width: int = 80) -> str:
    _check_size(int(width), "center")
    return do_center(value, width)


def _indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = width if isinstance(width, str) else " " * min(int(width), MAX_OUTPUT_CHARS + 1)
    _check_size(len(str(value)) + len(pad) * (str(value).count("\n") + 1), "indent")
    return do_indent(value, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value))
    return do_format(value, *args, **kwargs)


@pass_eval_context
def _replace(
    eval_ctx: EvalContext, value: str, old: str, new: str, count: int | None = None
) -> str:
    text, old, new = str(value), str(old), str(new)
    times = (text.count(old) if old else len(text) + 1) if count is None else int(count)
    _check_size(len(text) + max(0, times) * max(0, len(new) - len(old)), "replace")
    return str(do_replace(eval_ctx, value, old, new, count))


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(_budgeted_loop(value))  # each item is a loop step
    _check_size(len(str(d)) * len(items), "join")
    return str(sync_do_join(eval_ctx, items, d, attribute))


class _BoundedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _check_size(len(seq) * times, "'*'")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            _check_size(abs(left).bit_length() * right // 3, "'**'")  # ~ decimal digits
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _UNBOUNDED_METHODS:
            return False  # the filters of the same name are bounded instead
        return super().is_safe_attribute(obj, attr, value)


def _environment() -> SandboxedEnvironment:
    env = _BoundedEnvironment(undefined=_Blank, autoescape=False, keep_trailing_newline=True)
    env.filters["default"] = _default
    env.filters["d"] = _default
    env.filters["center"] = _center
    env.filters["indent"] = _indent
    env.filters["format"] = _format
    env.filters["replace"] = _replace
    env.filters["join"] = _join
    env.globals["budgeted_loop"] = _budgeted_loop
    return env


_ENV = _environment()


@lru_cache(maxsize=1024)
def _compile(body: str) -> Any:
    try:
        tree = _ENV.parse(body)
        for loop in tree.find_all(nodes.For):  # every loop counts its steps
            loop.iter = nodes.Call(nodes.Name("budgeted_loop", "load"), [loop.iter], [], None, None)
        return _ENV.from_string(tree)
    except TemplateError as exc:
        raise RenderError(f"template syntax error: {exc}") from exc


def _present(properties: Mapping[str, Any]) -> dict[str, Any]:
    # A null property is a missing one, so ``default`` and ``is defined`` both see it as such.
    return {k: v for k, v in properties.items() if v is not None}


def render(
    body: str,
    contact: Mapping[str, Any],
    account: Mapping[str, Any] | None = None,
    link: Callable[[str], str] = str,  # ``{{ link(url) }}``: tracked when the runner sends
) -> str:
    """The body with tokens replaced; raises RenderError, never anything else."""
    template = _compile(body)
    token = _LOOP_STEPS.set([MAX_LOOP_STEPS])
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(
            contact=_present(contact), account=dict(account or {}), link=link
        ):
            size += len(part)
            _check_size(size, "the output")
            parts.append(part)
    except RenderBudgetExceeded:
        raise
    except Exception as exc:  # a sandbox violation or a filter failing on odd data
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _LOOP_STEPS.reset(token)
    return "".join(parts)


def with_opt_out(text: str, opt_out_text: str | None) -> str:
    """Append the account's opt-out text to a marketing SMS, unless it already ends with it."""
    if not opt_out_text or not opt_out_text.strip():
        return text
    suffix = opt_out_text.strip()
    if text.rstrip().lower().endswith(suffix.lower()):
        return text
    return f"{text.rstrip()}{OPT_OUT_SEPARATOR}{suffix}" if text.strip() else suffix
