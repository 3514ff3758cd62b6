"""The composition root: ``open_services(settings)`` builds every service once, in one place.

Order of construction (one ``AsyncExitStack``, so closing runs exactly in reverse):

1. the Redis client, and the start-up checks (logged only);
2. the store, and the query services over it (traces, datasets, stats);
3. the writer, started (it replays what an earlier run left in the spool);
4. the feedback service;
5. the index-pruning task;
6. the OTLP exporter, when ``[export.otlp]`` names an endpoint (it reads the event stream);
7. the upstream session.

On close the session goes first (no new upstream calls), the pruning task is cancelled,
running feedback merges finish, the writer drains its queue into Redis or the spool, and the
store and Redis close. Both listeners get a narrow view of the one ``Services``
(``gateway_view``, ``admin_view``); neither builds anything per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import structlog

from proxy.admin.services import AdminServices
from proxy.config import Settings
from proxy.core.lifecycle import Lifecycle
from proxy.exporters.otlp.service import running_exporter
from proxy.feedback.model_lookup import RecentModels, TraceModels
from proxy.feedback.parse import FeedbackRules
from proxy.feedback.service import FeedbackService, ReplayCounter
from proxy.gateway.services import GatewayServices
from proxy.gateway.upstream import Router, client_session
from proxy.metrics import workers
from proxy.metrics.calls import CallMetrics
from proxy.metrics.cost import CostCounter
from proxy.metrics.export import ExportCounts
from proxy.metrics.feedback import FeedbackCounts
from proxy.recording.price_cache import load_price_table
from proxy.recording.price_table import PriceTable
from proxy.recording.pricing import SpanPricer, price_data_version
from proxy.redaction import hash_key, redact_record, redactor_for
from proxy.store.connection import connect_to
from proxy.store.datasets import DatasetStore
from proxy.store.keys import Keys
from proxy.store.redis_checks import startup_checks
from proxy.store.redis_store import RedisStore
from proxy.store.scores import AgreementStats
from proxy.store.stats import FeedbackStats
from proxy.store.trace_query import TraceQuery
from proxy.writer import Writer
from proxy.writer.writer import Prepare

log = structlog.get_logger("proxy.app")
PRUNE_INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class Services:
    """Everything one worker process runs on; built fully before either listener starts."""

    settings: Settings
    router: Router
    store: RedisStore
    traces: TraceQuery
    datasets: DatasetStore
    stats: FeedbackStats
    writer: Writer
    feedback: FeedbackService
    feedback_rules: FeedbackRules
    token_secret: bytes
    hash_key: bytes
    session: aiohttp.ClientSession
    call_metrics: CallMetrics
    lifecycle: Lifecycle
    metrics_dir: Path | None
    agreement: AgreementStats
    cost_metrics: CostCounter = field(default_factory=CostCounter)
    export_counts: ExportCounts = field(default_factory=ExportCounts)

    def gateway_view(self) -> GatewayServices:
        """What the proxy listener's handlers use."""
        return GatewayServices(
            settings=self.settings,
            router=self.router,
            session=self.session,
            writer=self.writer,
            feedback=self.feedback,
            feedback_rules=self.feedback_rules,
            token_secret=self.token_secret,
            hash_key=self.hash_key,
            call_metrics=self.call_metrics,
            lifecycle=self.lifecycle,
        )

    def admin_view(self) -> AdminServices:
        """What the admin listener's handlers use."""
        return AdminServices(
            settings=self.settings,
            store=self.store,
            traces=self.traces,
            datasets=self.datasets,
            stats=self.stats,
            feedback=self.feedback,
            feedback_rules=self.feedback_rules,
            scrape_metrics=self.scrape_metrics,
            lifecycle=self.lifecycle,
            agreement=self.agreement,
        )

    def metrics_snapshot(self, live: bool = True) -> dict[str, Any]:
        """This process's numbers as plain data (see ``proxy.metrics.prometheus``)."""
        writer = self.writer
        families: dict[str, Any] = self.call_metrics.snapshot()
        families["writer"] = [[[], [writer.queue_depth, writer.spool_bytes]]]
        families["records"] = [[[], [writer.written, writer.dropped, writer.spooled]]]
        families["feedback"] = self.feedback.counts.snapshot()
        families["cost"] = self.cost_metrics.snapshot()
        families["price_data"] = [[[price_data_version()], [1]]]
        families.update(self.export_counts.snapshot())
        return {"pid": os.getpid(), "live": live, "families": families}

    def scrape_metrics(self) -> list[dict[str, Any]]:
        """This worker's live numbers plus every other worker's latest published snapshot."""
        snapshots = [self.metrics_snapshot()]
        if self.metrics_dir is not None:
            snapshots += workers.read_others(self.metrics_dir, os.getpid())
        return snapshots


def ensure_token_secret(settings: Settings) -> Settings:
    """The settings with a feedback-token secret: the configured one, or a random one.

    The one fallback: ``serve`` calls it before forking, so every worker of one start shares
    the secret; replicas must share a configured one (tokens of a random secret last until a
    restart)."""
    if settings.feedback.token_secret:
        return settings
    log.warning("feedback.token_secret is not set: feedback tokens last until a restart")
    if settings.capture.redact.mode == "hash" and not settings.capture.redact.key:
        log.warning(
            "capture.redact.mode is hash without capture.redact.key or feedback.token_secret: "
            "the hashes of equal values differ after a restart and between replicas"
        )
    secret = secrets.token_hex(32)
    return replace(settings, feedback=replace(settings.feedback, token_secret=secret))


@asynccontextmanager
async def open_services(
    settings: Settings, metrics_dir: Path | None = None
) -> AsyncIterator[Services]:
    """Build every service (see the module docstring for the order); close them in reverse."""
    settings = ensure_token_secret(settings)
    async with AsyncExitStack() as stack:
        redis = connect_to(settings.redis)
        stack.push_async_callback(redis.aclose)
        await startup_checks(redis)  # logs only; bounded by the connect timeout
        keys = Keys(settings.redis.key_prefix)
        counts, recent = FeedbackCounts(), RecentModels()
        cost = CostCounter()
        prices = await asyncio.to_thread(load_price_table)  # a file read, or a child's build
        store = _store(redis, keys, settings, ReplayCounter(counts, recent), cost, prices)
        stack.push_async_callback(store.close)
        redact = _redaction(settings)
        writer = await _started_writer(store, settings, redact)
        stack.push_async_callback(writer.close, deadline=max(1.0, settings.proxy.drain_seconds))
        timeout = settings.writer.write_timeout
        models = TraceModels(store, timeout, recent)
        feedback = FeedbackService(store, writer, timeout, models, counts, redact)
        stack.push_async_callback(feedback.close)
        await stack.enter_async_context(_background(_prune_forever(store)))
        export_counts = ExportCounts()  # [export.otlp]: stopped before Redis closes
        await stack.enter_async_context(running_exporter(redis, keys, settings, export_counts))
        session = await stack.enter_async_context(client_session(settings))
        yield Services(
            settings=settings,
            router=Router(settings.upstreams, settings.proxy.default_upstream),
            store=store,
            traces=TraceQuery(redis, keys),
            datasets=DatasetStore(redis, keys, store),
            stats=FeedbackStats(redis, keys),
            writer=writer,
            feedback=feedback,
            feedback_rules=FeedbackRules.from_settings(settings.feedback),
            token_secret=settings.feedback.token_secret.encode(),
            hash_key=hash_key(settings.capture.redact, settings.feedback.token_secret),
            session=session,
            call_metrics=CallMetrics(),
            lifecycle=Lifecycle(),
            metrics_dir=metrics_dir,
            agreement=AgreementStats(redis, keys),
            cost_metrics=cost,
            export_counts=export_counts,
        )


def _store(
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    on_replayed: ReplayCounter,
    cost: CostCounter,
    prices: PriceTable | None,
) -> RedisStore:
    urls = {name: upstream.base_url for name, upstream in settings.upstreams.items()}
    return RedisStore(
        redis,
        keys,
        settings.redis.retention_days,
        max_feedback_events=settings.feedback.max_events_per_trace,
        review_rules=settings.review_rules,
        on_replayed=on_replayed,
        regenerate_window_s=settings.implicit.regenerate_window_seconds,
        pricer=SpanPricer(prices, urls),
        on_cost=cost.add,
        dimensions=settings.stats.dimensions,
    )


def _redaction(settings: Settings) -> Prepare | None:
    """What the writer and the feedback service run on each record before it is stored."""
    redactor = redactor_for(settings.capture.redact, settings.feedback.token_secret)
    return functools.partial(redact_record, redactor) if redactor is not None else None


async def _started_writer(
    store: RedisStore, settings: Settings, prepare: Prepare | None = None
) -> Writer:
    config = settings.writer
    writer = Writer(
        store,
        Path(config.spool_dir),
        max_queue=config.queue_size,
        batch_size=config.batch_size,
        write_timeout=config.write_timeout,
        prepare=prepare,
    )
    await writer.start()
    return writer


@asynccontextmanager
async def publishing_metrics(services: Services) -> AsyncIterator[None]:
    """With several workers: publish this one's metrics for the others' scrapes while the
    block runs (the final snapshot is the caller's, after the writer drained)."""
    if services.metrics_dir is None:
        yield
        return
    directory = services.metrics_dir
    async with _background(workers.publish_forever(services.metrics_snapshot, directory)):
        yield


def publish_final_metrics(services: Services) -> None:
    """The last snapshot of a stopping worker, marked not live: its counters still count,
    its queue and spool gauges no longer do."""
    if services.metrics_dir is not None:
        workers.publish(services.metrics_dir, services.metrics_snapshot(live=False))


@asynccontextmanager
async def _background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``work`` as a kept task while the block runs; cancel and await it after."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _prune_forever(store: RedisStore) -> None:
    """Prune index entries of expired traces in the background (never on a request)."""
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        try:
            await store.prune_indexes()
        except Exception as exc:  # a failed prune is retried next round; log why
            log.warning("index prune failed", error=f"{type(exc).__name__}: {exc}")
