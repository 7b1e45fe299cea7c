"""One stack for the whole e2e session: ``smsflow dev up`` in a tmp dir, on free ports,
with a topic prefix of its own, against the session's broker; ``dev down`` at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import DevStack, stack_environment


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    handle = DevStack(stack_environment(kafka_bootstrap, tmp_path_factory.mktemp("stack")))
    try:
        yield handle.start()
    finally:
        assert handle.close() == {"dev down": 0}
