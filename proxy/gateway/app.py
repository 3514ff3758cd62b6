"""The composition root: ``create_app(settings)`` wires every resource in one place.

Each resource is owned by a ``cleanup_ctx`` context, in dependency order (Redis client, store
and writer, then the upstream session), so start-up and shutdown are symmetrical and nothing
lives in module globals. On shutdown the session closes first (no new upstream calls), then
the writer drains its queue into Redis or the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.feedback.model_lookup import TraceModels
from proxy.feedback.parse import FeedbackRules
from proxy.feedback.service import FeedbackService
from proxy.gateway.expect import expect_handler
from proxy.gateway.feedback_route import post_feedback, preflight_feedback
from proxy.gateway.forward import forward
from proxy.gateway.upstream import Router, client_session
from proxy.metrics import workers as metrics_shared
from proxy.runtime.state import STATE, ProxyState
from proxy.store.connection import connect_to
from proxy.store.keys import Keys
from proxy.store.redis_checks import startup_checks
from proxy.store.redis_store import RedisStore
from proxy.writer.writer import Writer

log = structlog.get_logger("proxy.app")
PRUNE_INTERVAL_S = 600.0


def create_app(settings: Settings, metrics_dir: Path | None = None) -> web.Application:
    """The proxy listener's application (health routes, then everything else is forwarded).

    ``metrics_dir``: set by the parent of several workers (see ``proxy.metrics.workers``)."""
    app = web.Application(
        client_max_size=settings.proxy.max_body_bytes,
        handler_args={"max_field_size": settings.proxy.max_header_bytes},
    )
    app[STATE] = ProxyState(
        settings=settings,
        router=Router(settings.upstreams, settings.proxy.default_upstream),
        metrics_dir=metrics_dir,
    )
    app.cleanup_ctx.extend(
        [_shared_metrics, _redis_store, _writer, _feedback, _retention, _client_session,
         _companions]
    )  # fmt: skip
    app.router.add_get("/healthz", healthz, expect_handler=expect_handler)
    app.router.add_get("/readyz", readyz, expect_handler=expect_handler)
    app.router.add_post("/feedback", post_feedback, expect_handler=expect_handler)
    app.router.add_route("OPTIONS", "/feedback", preflight_feedback, expect_handler=expect_handler)
    app.router.add_route("*", "/{tail:.*}", forward, expect_handler=expect_handler)
    return app


async def _redis_store(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    redis = state.redis = connect_to(state.settings.redis)
    await startup_checks(redis)  # logs only; bounded by the connect timeout
    keys = Keys(state.settings.redis.key_prefix)
    feedback = state.settings.feedback
    state.store = RedisStore(
        redis,
        keys,
        state.settings.redis.retention_days,
        max_feedback_events=feedback.max_events_per_trace,
        review_rules=state.settings.review_rules,
    )
    yield
    await state.store.close()
    await redis.aclose()


async def _writer(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    config = state.settings.writer
    state.writer = Writer(
        state.store,
        Path(config.spool_dir),
        max_queue=config.queue_size,
        batch_size=config.batch_size,
        write_timeout=config.write_timeout,
    )
    await state.writer.start()
    yield
    await state.writer.close(deadline=max(1.0, state.settings.proxy.drain_seconds))


async def _feedback(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.feedback_rules = FeedbackRules.from_settings(state.settings.feedback)
    state.token_secret = token_secret(state.settings)
    timeout = state.settings.writer.write_timeout
    models = TraceModels(state.store, timeout)
    state.feedback = FeedbackService(state.store, state.writer, timeout, models)
    yield
    await state.feedback.close()


async def _companions(app: web.Application) -> AsyncIterator[None]:
    """Last in, first out: on shutdown, after the proxy's calls drained, stop the admin
    listener before the session, the writer and Redis go."""
    yield
    for runner in app[STATE].companions:
        await runner.cleanup()


async def _shared_metrics(app: web.Application) -> AsyncIterator[None]:
    """With several workers: publish this one's metrics for the others' scrapes. First in, last
    out: its final snapshot comes after the writer's drain, so the counters are complete."""
    state = app[STATE]
    if state.metrics_dir is None:
        yield
        return
    task = asyncio.create_task(metrics_shared.publish_forever(state, state.metrics_dir))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    metrics_shared.publish(state.metrics_dir, metrics_shared.local_snapshot(state, live=False))


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """Prune index entries of expired traces in the background (never on a request)."""
    task = asyncio.create_task(_prune_forever(app[STATE].store))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _prune_forever(store: RedisStore) -> None:
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        try:
            await store.prune_indexes()
        except Exception as exc:  # a failed prune is retried next round; log why
            log.warning("index prune failed", error=f"{type(exc).__name__}: {exc}")


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    async with client_session(app[STATE].settings) as session:
        app[STATE].session = session
        yield


def token_secret(settings: Settings) -> bytes:
    """The configured secret, or a random one for this process (set it for several replicas)."""
    secret = settings.feedback.token_secret
    return secret.encode() if secret else os.urandom(32)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining. (Redis being down does not stop forwarding.)"""
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})
