"""The definitions view as a service of the faust app, so it runs on faust's event loop.

Added as the app's first dependency, it starts before the app's consumer and agents and does
not return until the topic is read to its end (or fails the start past ``wait_s``); it stops
after them. The agent and the timer task also wait for ``loaded`` themselves, so no record
or timer is ever decided against a partial catalog whatever the start order.
"""

from __future__ import annotations

from mode import Service

from services.common.definitions_view import DefinitionsView


class ReadDefinitions(Service):
    def __init__(self, view: DefinitionsView, wait_s: float, **kwargs: object) -> None:
        self.view = view
        self.wait_s = wait_s
        super().__init__(**kwargs)  # type: ignore[arg-type]

    async def on_start(self) -> None:
        await self.view.start(wait_s=self.wait_s)

    async def on_stop(self) -> None:
        await self.view.stop()
