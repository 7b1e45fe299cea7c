"""Tails of topics and service processes for integration tests, closed and stopped at the
end of the test (``tail``, ``service``) or of the module (``module_tail``,
``module_service``), whatever the test's outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Opened, OpenTail, StartService


@pytest.fixture
def opened() -> Iterator[Opened]:
    opened = Opened()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def module_opened() -> Iterator[Opened]:
    opened = Opened()
    yield opened
    opened.close()


@pytest.fixture
def tail(opened: Opened) -> OpenTail:
    return opened.tail


@pytest.fixture
def service(opened: Opened) -> StartService:
    return opened.service


@pytest.fixture(scope="module")
def module_tail(module_opened: Opened) -> OpenTail:
    return module_opened.tail


@pytest.fixture(scope="module")
def module_service(module_opened: Opened) -> StartService:
    return module_opened.service
