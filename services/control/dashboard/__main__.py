"""``smsflow dashboard [--host H] [--port P]``: the live page on 127.0.0.1:8030.

The port comes from ``SMSFLOW_DASHBOARD_PORT`` unless ``--port`` names one.
"""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from services.common.settings import KafkaSettings
from services.control.console import OK, Usage, parse_args, quiet_logs
from services.control.dashboard.app import build_app

DEFAULT_PORT = 8030


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow dashboard",
        description="A live web page of SMS statuses, enrollments, dead letters and lag.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("SMSFLOW_DASHBOARD_PORT", DEFAULT_PORT))
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(build_parser(), sys.argv[1:] if argv is None else argv)
    except Usage as exc:
        return exc.code
    quiet_logs("dashboard")
    settings = KafkaSettings.from_env()
    print(f"smsflow dashboard on http://{args.host}:{args.port}/", flush=True)
    web.run_app(build_app(settings), host=args.host, port=args.port, print=None)
    return OK


if __name__ == "__main__":
    raise SystemExit(main())
