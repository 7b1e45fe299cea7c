"""SMS bodies from HubSpot-style personalization tokens, in a sandboxed Jinja2 environment.

``{{ contact.firstname | default('there') }}``: a property the contact lacks (absent,
null or blank) renders its default, or nothing; a template never reaches the file system,
attributes of Python objects or anything else outside the values it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

OPT_OUT_SEPARATOR = "\n"


class RenderError(ValueError):
    """The body could not be rendered (a syntax error, a sandbox violation)."""


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


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=_Blank, autoescape=False, keep_trailing_newline=True)
    env.filters["default"] = _default
    env.filters["d"] = _default
    return env


_ENV = _environment()


@lru_cache(maxsize=1024)
def _compile(body: str) -> Any:
    try:
        return _ENV.from_string(body)
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
    try:
        text: str = template.render(
            contact=_present(contact), account=dict(account or {}), link=link
        )
    except Exception as exc:  # a sandbox violation or a filter failing on odd data
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    return text


def with_opt_out(text: str, opt_out_text: str | None) -> str:
    """Append the account's opt-out text to a marketing SMS, unless it already ends with it."""
    if not opt_out_text or not opt_out_text.strip():
        return text
    suffix = opt_out_text.strip()
    if text.rstrip().lower().endswith(suffix.lower()):
        return text
    return f"{text.rstrip()}{OPT_OUT_SEPARATOR}{suffix}" if text.strip() else suffix
