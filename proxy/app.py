"""The composition root: ``create_app(settings)`` wires every resource in one place.

Each resource is owned by a ``cleanup_ctx`` context, in dependency order, so start-up and
shutdown are symmetrical and nothing lives in module globals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from proxy.forward import forward
from proxy.settings import Settings
from proxy.state import STATE, ProxyState
from proxy.upstream import Router, client_session


def create_app(settings: Settings) -> web.Application:
    """The proxy listener's application (health routes, then everything else is forwarded)."""
    app = web.Application(
        client_max_size=settings.proxy.max_body_bytes,
        handler_args={"max_field_size": settings.proxy.max_header_bytes},
    )
    app[STATE] = ProxyState(
        settings=settings,
        router=Router(settings.upstreams, settings.proxy.default_upstream),
    )
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    async with client_session(app[STATE].settings) as session:
        app[STATE].session = session
        yield


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining. (Redis being down does not stop forwarding.)"""
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})
