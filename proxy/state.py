"""The proxy listener's shared state, typed and owned by the application."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from proxy.settings import Settings
from proxy.upstream import Router


@dataclass(slots=True)
class ProxyState:
    settings: Settings
    router: Router
    session: aiohttp.ClientSession = field(init=False)
    draining: bool = False


STATE = web.AppKey("proxy_state", ProxyState)
