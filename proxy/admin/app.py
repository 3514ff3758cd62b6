"""The admin application, served on its own listener (default 127.0.0.1:8081).

It owns no resources: it mounts its routes on ``AdminServices``, the admin view of the
services ``proxy.runtime.services`` built once for both listeners, so both see the same Redis
and the same writer. Middlewares: errors (outermost: every raised error becomes the one JSON
shape), then the bearer token.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.admin.api.datasets import (
    add_rows,
    delete_dataset,
    delete_row,
    list_datasets,
    list_rows,
    patch_row,
)
from proxy.admin.api.metrics import get_metrics
from proxy.admin.api.openapi import openapi_json
from proxy.admin.api.patch import patch_span, patch_trace
from proxy.admin.api.scores import agreement, post_score
from proxy.admin.api.stats import feedback_stats
from proxy.admin.api.traces import get_trace, list_traces
from proxy.admin.responses import errors_as_json, json_response
from proxy.admin.services import ADMIN, AdminServices
from proxy.core.errors import Unauthorized

_OPEN_PATHS = frozenset({"/healthz"})


def create_admin_app(services: AdminServices) -> web.Application:
    app = web.Application(middlewares=[errors_as_json, _auth])
    app[ADMIN] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/api/traces", list_traces)
    app.router.add_get("/api/traces/{trace_id}", get_trace)
    app.router.add_patch("/api/traces/{trace_id}", patch_trace)
    app.router.add_patch("/api/traces/{trace_id}/spans/{span_id}", patch_span)
    app.router.add_get("/api/datasets", list_datasets)
    app.router.add_post("/api/datasets/{name}/rows", add_rows)
    app.router.add_get("/api/datasets/{name}/rows", list_rows)
    app.router.add_patch("/api/datasets/{name}/rows/{row_id}", patch_row)
    app.router.add_delete("/api/datasets/{name}/rows/{row_id}", delete_row)
    app.router.add_delete("/api/datasets/{name}", delete_dataset)
    app.router.add_get("/api/stats/feedback", feedback_stats)
    app.router.add_post("/api/traces/{trace_id}/scores", post_score)
    app.router.add_get("/api/stats/agreement", agreement)
    return app


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Once admin.token is set, every route but /healthz demands it, on loopback too."""
    token = request.app[ADMIN].settings.admin.token
    if token and request.path not in _OPEN_PATHS:
        sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
            raise Unauthorized("Missing or wrong admin bearer token.")
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when Redis answers and the proxy is not draining; 503 otherwise."""
    services = request.app[ADMIN]
    if services.lifecycle.draining:
        return json_response({"status": "draining"}, status=503)
    if not await services.store.ping():
        return json_response({"status": "redis unreachable"}, status=503)
    return json_response({"status": "ready"})
