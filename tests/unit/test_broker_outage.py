"""Which errors mean the broker is away (wait), and which mean the record is bad."""

from __future__ import annotations

import aiokafka.errors as aio
import pytest
from faust.exceptions import ProducerSendError

from services.common.broker_outage import broker_unavailable


def wrapped(cause: BaseException) -> ProducerSendError:
    """As faust raises it: ``raise ProducerSendError(...) from exc``."""
    try:
        raise ProducerSendError(f"Error while sending: {cause!r}") from cause
    except ProducerSendError as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        aio.KafkaConnectionError("refused"),
        aio.KafkaTimeoutError(),
        aio.NodeNotReadyError("node 1"),
        aio.NotLeaderForPartitionError(),
        aio.NotControllerError(),
        aio.RequestTimedOutError(),
        wrapped(aio.KafkaConnectionError("refused")),
        wrapped(aio.LeaderNotAvailableError()),
    ],
)
def test_a_broker_outage_is_waited_out(error: BaseException) -> None:
    assert broker_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        aio.MessageSizeTooLargeError(),
        aio.RecordTooLargeError(),
        wrapped(aio.MessageSizeTooLargeError()),
        ValueError("bad record"),
        ProducerSendError("No transaction producer found"),
    ],
)
def test_a_bad_record_or_a_bug_is_not_an_outage(error: BaseException) -> None:
    assert not broker_unavailable(error)


def test_a_cause_chain_that_loops_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert not broker_unavailable(first)
