"""JSON bytes <-> pydantic models: the only place events are (de)serialised."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DecodeError(ValueError):
    """A record that cannot become a model; ``reason`` names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=False).encode()


def encode_key(key: str) -> bytes:
    return key.encode()


def decode_key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")


def decode(model: type[M], value: bytes | None) -> M:
    if value is None:
        raise DecodeError("empty value (tombstone) where an event was expected")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise DecodeError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """``field.path: message; ...`` — short enough for a dead letter, precise enough to fix."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "<value>"
        if error["type"] == "json_invalid":
            parts.append(f"malformed JSON: {error['msg']}")
        else:
            parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)
