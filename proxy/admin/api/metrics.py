"""``GET /metrics``: the Prometheus text exposition, summed over every worker process.

Behind the admin token like every admin route but ``/healthz`` (SPEC §6): Prometheus sends it
with ``authorization: {credentials: <token>}`` (or ``bearer_token_file``) in the scrape config.
"""

from __future__ import annotations

import os

from aiohttp import web

from proxy.admin.responses import ADMIN_STATE
from proxy.metrics import workers as metrics_shared
from proxy.metrics.prometheus import CONTENT_TYPE, merge, render


async def get_metrics(request: web.Request) -> web.Response:
    """This worker's live numbers plus every other worker's latest published snapshot."""
    state = request.app[ADMIN_STATE]
    snapshots = [metrics_shared.local_snapshot(state)]
    if state.metrics_dir is not None:
        snapshots += metrics_shared.read_others(state.metrics_dir, os.getpid())
    merged, processes = merge(snapshots)
    return web.Response(body=render(merged, processes), headers={"Content-Type": CONTENT_TYPE})
