"""``smsflow emit contact ACCOUNT CONTACT_ID prop=value ...``: publish one contact change.

``prop=value`` sets a string, ``prop=null`` clears the property, ``prop:=JSON`` sets a typed
value (``age:=42``, ``vip:=true``); ``--delete`` publishes a deletion. Prints the event id.
Exit codes: 0 published, 1 invalid input, 2 usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys

from kafka.errors import KafkaError
from pydantic import ValidationError

from schemas.contacts import ContactChange, PropertyValue
from schemas.topics import CONTACT_CHANGES
from services.common.codec import describe_validation_error
from services.common.settings import KafkaSettings
from services.control.console import (
    INVALID,
    OK,
    BrokerUnreachable,
    require_broker,
    run_command,
)
from services.control.kafka import make_producer, send_model


def parse_property(text: str) -> tuple[str, PropertyValue]:
    """``name=value`` (``null`` clears) or ``name:=json`` (a number, boolean or null)."""
    if ":=" in text and text.index(":=") < text.index("=") + 1:
        name, raw = text.split(":=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{text!r}: the value after := must be JSON ({exc.msg})") from exc
        if isinstance(value, (dict, list)):
            raise ValueError(f"{text!r}: a property holds a string, number, boolean or null")
    elif "=" in text:
        name, raw = text.split("=", 1)
        value = None if raw == "null" else raw
    else:
        raise ValueError(f"{text!r}: write properties as name=value, name=null or name:=json")
    if not name:
        raise ValueError(f"{text!r}: the property name is empty")
    return name, value


def build_change(
    account: str, contact: str, assignments: list[str], delete: bool = False
) -> ContactChange:
    properties = dict(parse_property(item) for item in assignments)
    try:
        return ContactChange(
            account_id=account, contact_id=contact, properties=properties, deleted=delete
        )
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow emit",
        description="Publish one contact change to the contact-changes topic.",
        epilog="exit codes: 0 published, 1 invalid input, 2 usage, 3 broker unreachable",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    contact = sub.add_parser("contact", help="a contact change")
    contact.add_argument("account")
    contact.add_argument("contact_id")
    contact.add_argument("properties", nargs="*", metavar="prop=value")
    contact.add_argument("--delete", action="store_true", help="the contact was deleted")
    return parser


def publish(settings: KafkaSettings, change: ContactChange, timeout_s: float = 30.0) -> None:
    require_broker(settings)
    try:
        producer = make_producer(settings)
        try:
            send_model(producer, settings.topic(CONTACT_CHANGES), change).get(timeout=timeout_s)
        finally:
            producer.close(timeout=timeout_s)
    except KafkaError as exc:
        raise BrokerUnreachable(f"publishing the contact change failed: {exc}") from exc


def main(argv: list[str]) -> int:
    return run_command("emit", build_parser(), argv, _emit)


def _emit(args: argparse.Namespace, settings: KafkaSettings) -> int:
    try:
        change = build_change(args.account, args.contact_id, args.properties, args.delete)
    except ValueError as exc:
        print(f"smsflow emit: {exc}", file=sys.stderr)
        return INVALID
    publish(settings, change)
    print(change.event_id)
    return OK
