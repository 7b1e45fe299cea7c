"""The typed application key under which handlers find the simulator."""

from __future__ import annotations

from aiohttp import web

from .simulator import Simulator

SIMULATOR = web.AppKey("simulator", Simulator)
