"""structlog set-up: JSON off a terminal, console on one, phones masked, bodies dropped."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from services.common.masking import mask_phone, mask_phones_in

# Keys whose values are phone numbers; masked wherever they appear.
PHONE_KEYS = frozenset({"to", "from", "from_", "phone", "mobilephone", "number", "recipient"})
# Keys that would carry an SMS body; never logged.
BODY_KEYS = frozenset({"body", "text", "sms_body"})


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask numbers, drop bodies, scrub numbers from free text."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in BODY_KEYS:
            event_dict[key] = "<redacted>"
        elif key in PHONE_KEYS and isinstance(value, str):
            event_dict[key] = mask_phone(value)
        elif isinstance(value, str) and key not in ("event", "timestamp", "level"):
            event_dict[key] = mask_phones_in(value)
    return event_dict


def configure_logging(service: str, *, level: str = "INFO", json: bool | None = None) -> None:
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (kafka-python, aiokafka) log through stdlib logging: keep them quiet.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
