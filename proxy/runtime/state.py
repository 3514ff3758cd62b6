"""The proxy listener's shared state, typed and owned by the application."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from proxy.config import Settings
from proxy.gateway.upstream import Router
from proxy.metrics.calls import CallMetrics
from proxy.store.redis_store import RedisStore

if TYPE_CHECKING:
    from proxy.feedback.parse import FeedbackRules
    from proxy.feedback.service import FeedbackService
    from proxy.writer.writer import Writer


@dataclass(slots=True)
class ProxyState:
    """Resources are filled in by the app's cleanup contexts, in dependency order."""

    settings: Settings
    router: Router
    session: aiohttp.ClientSession = field(init=False)
    redis: aioredis.Redis = field(init=False)
    store: RedisStore = field(init=False)
    writer: Writer = field(init=False)
    feedback: FeedbackService = field(init=False)
    feedback_rules: FeedbackRules = field(init=False)
    token_secret: bytes = field(init=False)
    draining: bool = False
    # Runners (the admin listener) to stop once the proxy's own calls have drained and before
    # its resources close: meanwhile their /readyz says "draining", and their writes still land.
    companions: list[web.AppRunner] = field(default_factory=list)
    metrics: CallMetrics = field(default_factory=CallMetrics)
    # With several worker processes: where each publishes its metrics for the others' scrapes.
    metrics_dir: Path | None = None


STATE = web.AppKey("proxy_state", ProxyState)
