"""Building the OTLP exporter from settings: its stream reader, its own HTTP session, the
upstream targets its spans name (``server.address``), started and stopped as one unit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from proxy.config import Settings
from proxy.metrics.export import ExportCounts
from proxy.store.errors import REDIS_FAILURES
from proxy.store.event_stream import EventStream
from proxy.store.keys import Keys

if TYPE_CHECKING:
    from proxy.exporters.otlp.exporter import OtlpExporter
    from proxy.exporters.otlp.mapping import Target

STOP_DEADLINE_S = 5.0


def upstream_targets(settings: Settings) -> dict[str, Target]:
    """Upstream name -> the host and port its calls went to."""
    from proxy.exporters.otlp.mapping import Target  # lazily: see running_exporter

    targets = {}
    for name, upstream in settings.upstreams.items():
        parts = urlsplit(upstream.base_url)
        if parts.hostname:
            targets[name] = Target(parts.hostname, parts.port)
    return targets


@asynccontextmanager
async def running_exporter(
    redis: aioredis.Redis, keys: Keys, settings: Settings, counts: ExportCounts
) -> AsyncIterator[OtlpExporter | None]:
    """The exporter, running while the block runs; None when ``export.otlp.endpoint`` is empty.

    The stream's group is created before the proxy takes calls (so export starts with the
    first call); if Redis is away at start, the loop creates it once Redis answers.

    The exporter's modules are imported only here, once export is on: the OpenTelemetry
    protobuf messages cost about 2 MiB of memory that a proxy without export never needs."""
    otlp = settings.otlp
    if not otlp.endpoint:
        yield None
        return
    from proxy.exporters.otlp.client import OtlpClient, export_session
    from proxy.exporters.otlp.exporter import GROUP, OtlpExporter

    async with export_session(otlp.timeout) as session:
        stream = EventStream(redis, keys, GROUP)
        client = OtlpClient(session, otlp.endpoint, otlp.headers)
        exporter = OtlpExporter(stream, client, otlp, upstream_targets(settings), counts)
        with contextlib.suppress(*REDIS_FAILURES):  # Redis away at start: the loop retries
            await stream.ensure_group()
        exporter.start()
        try:
            yield exporter
        finally:
            await exporter.stop(STOP_DEADLINE_S)
