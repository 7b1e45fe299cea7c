"""Whether an error means "the broker is away for now" rather than "this record is bad".

While the broker restarts, a write fails with a connection error, a timeout, a stale leader
or no controller. Nothing is wrong with the record then: it must wait and be tried again, not
be dead-lettered after a few quick attempts. faust wraps the client's error
(``ProducerSendError`` from a ``KafkaError``), so the whole cause chain is looked at. The
services' clients are aiokafka's (faust's included), so only its errors are known here.
"""

from __future__ import annotations

import aiokafka.errors as aio

# Not marked retriable by the clients, yet what a broker restart looks like.
_OUTAGE = (
    aio.KafkaTimeoutError,
    aio.KafkaConnectionError,
    aio.KafkaUnavailableError,
    aio.BrokerNotAvailableError,
    aio.NotControllerError,
    aio.RequestTimedOutError,
)


def broker_unavailable(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGE):
            return True
        if isinstance(current, aio.KafkaError) and current.retriable:
            return True
        current = current.__cause__ or current.__context__
    return False
