"""``smsflow``: one console script; each command lives in the module that implements it."""

from __future__ import annotations

import importlib
import sys

# command -> (module:function taking argv, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("services.control.dev:main", "run the whole local stack: up | down | status | logs"),
    "kafka": (
        "services.control.broker_cli:kafka_main",
        "local Kafka broker: start | stop | status",
    ),
    "topics": ("services.control.broker_cli:topics_main", "topics create: create every topic"),
    "apply": ("services.control.apply:main", "validate and publish definitions (-f PATH)"),
    "emit": ("services.control.emit:main", "publish one contact change"),
    "status": ("services.control.status:main", "show SMS statuses [--follow] [--json]"),
    "dead-letters": (
        "services.control.dead_letters:main",
        "dead letters: list | replay [--service S] [--since T]",
    ),
    "explain": ("services.control.explain:main", "a contact's story: explain ACCOUNT CONTACT"),
    "consent": ("services.control.consent_history:main", "consent audit trail: consent show"),
    "dashboard": ("services.control.dashboard.__main__:main", "live web page on 127.0.0.1:8030"),
    "enroller": ("services.enroller.__main__:main", "run the enroller"),
    "action-runner": ("services.action_runner.__main__:main", "run the action runner"),
    "sms-sender": ("services.sms_sender.__main__:main", "run the SMS sender"),
    "gateway-sim": ("services.gateway_sim.__main__:main", "run the SMS gateway simulator"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: smsflow COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"smsflow: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function = COMMANDS[command][0].split(":")
    entry = getattr(importlib.import_module(module_name), function)
    return int(entry(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
