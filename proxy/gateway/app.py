"""The proxy listener's application: health routes, ``POST /feedback``, and everything else
forwarded. It owns no resources: ``proxy.runtime.services`` builds them before the listener
starts and closes them after it stopped.
"""

from __future__ import annotations

from aiohttp import web

from proxy.gateway.expect import expect_handler
from proxy.gateway.feedback_route import (
    feedback_method_not_allowed,
    post_feedback,
    preflight_feedback,
)
from proxy.gateway.forward import forward
from proxy.gateway.services import GATEWAY, GatewayServices
from proxy.gateway.widget import widget_handler


def create_proxy_app(services: GatewayServices) -> web.Application:
    """Routes on the given services; body and header caps from the settings."""
    proxy = services.settings.proxy
    app = web.Application(
        client_max_size=proxy.max_body_bytes,
        handler_args={"max_field_size": proxy.max_header_bytes},
    )
    app[GATEWAY] = services
    routes = app.router
    routes.add_get("/healthz", healthz, expect_handler=expect_handler)
    routes.add_get("/readyz", readyz, expect_handler=expect_handler)
    routes.add_post("/feedback", post_feedback, expect_handler=expect_handler)
    routes.add_route("OPTIONS", "/feedback", preflight_feedback, expect_handler=expect_handler)
    routes.add_route("*", "/feedback", feedback_method_not_allowed, expect_handler=expect_handler)
    widget = widget_handler(services.settings.feedback.reasons)  # §14: <feedback-widget>
    routes.add_get("/feedback.js", widget, expect_handler=expect_handler)
    routes.add_route("*", "/{tail:.*}", forward, expect_handler=expect_handler)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining. (Redis being down does not stop forwarding.)"""
    if request.app[GATEWAY].lifecycle.draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})
