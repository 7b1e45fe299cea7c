"""``smsflow sms-sender`` / ``python -m services.sms_sender``: run the SMS sender."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable

from services.common.logging import configure_logging
from services.common.topic_admin import check_partitioning
from services.common.topic_layout import TopicLayoutError
from services.sms_sender.service import run
from services.sms_sender.settings import SenderSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smsflow sms-sender",
        description="Send SMS requests through the gateway; serve delivery and inbound webhooks.",
        epilog="Configured by SMSFLOW_* environment variables (see settings.py).",
    )
    parser.parse_args(argv)
    settings = SenderSettings.from_env()
    assert isinstance(settings, SenderSettings)
    problem = settings.secret_problem()
    if problem is not None:
        # Forged webhooks could opt anyone in or out: no start with a secret others know.
        print(f"sms-sender: refusing to start: {problem}", file=sys.stderr)
        return 2
    configure_logging("sms-sender")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            # The ledger is owned per request partition: it must be partitioned alike.
            runner.run(check_partitioning(settings))
        except TopicLayoutError as exc:
            print(f"sms-sender: refusing to start: {exc}", file=sys.stderr)
            return 2
        return runner.run(_serve(settings))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (about twice as fast for the HTTP work), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


async def _serve(settings: SenderSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await run(settings, stop)


if __name__ == "__main__":
    sys.exit(main())
