"""One stack for the whole e2e session: ``smsflow dev up`` in a tmp dir, on free ports,
with a topic prefix of its own, against the session's broker; ``dev down`` at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, stack_environment


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    handle = Stack(stack_environment(kafka_bootstrap, state_dir), state_dir)
    up = handle.smsflow("dev", "up", timeout_s=300)
    try:
        if up.returncode != 0:
            pytest.fail(f"smsflow dev up failed:\n{up.stdout}\n{up.stderr}\n{handle.logs()}")
        yield handle
    finally:
        down = handle.smsflow("dev", "down", timeout_s=120)
        assert down.returncode == 0, down.stderr
