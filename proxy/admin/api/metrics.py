"""``GET /metrics``: the Prometheus text exposition, summed over every worker process.

Behind the admin token like every admin route but ``/healthz`` (docs/reference.md §6):
Prometheus sends it with ``authorization: {credentials: <token>}`` (or ``bearer_token_file``)
in the scrape config.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin.services import ADMIN
from proxy.metrics.prometheus import CONTENT_TYPE, merge, render


async def get_metrics(request: web.Request) -> web.Response:
    """This worker's live numbers plus every other worker's latest published snapshot."""
    merged, processes = merge(request.app[ADMIN].scrape_metrics())
    return web.Response(body=render(merged, processes), headers={"Content-Type": CONTENT_TYPE})
