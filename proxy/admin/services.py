"""What the admin listener's handlers use, built once by ``proxy.runtime.services``.

A narrow, typed view (``request.app[ADMIN]``): the query services are built once, not per
request, and the admin side never sees the upstream session or the raw Redis client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.config import Settings
from proxy.core.lifecycle import Lifecycle
from proxy.feedback.parse import FeedbackRules
from proxy.feedback.service import FeedbackService
from proxy.store.datasets import DatasetStore
from proxy.store.redis_store import RedisStore
from proxy.store.scores import AgreementStats
from proxy.store.stats import FeedbackStats
from proxy.store.trace_query import TraceQuery

MetricsScrape = Callable[[], list[dict[str, Any]]]
"""Every worker's metrics snapshot (this one live, the others from their files)."""


@dataclass(frozen=True, slots=True)
class AdminServices:
    settings: Settings
    store: RedisStore
    traces: TraceQuery
    datasets: DatasetStore
    stats: FeedbackStats
    feedback: FeedbackService
    feedback_rules: FeedbackRules
    scrape_metrics: MetricsScrape
    lifecycle: Lifecycle
    agreement: AgreementStats


ADMIN = web.AppKey("admin_services", AdminServices)
