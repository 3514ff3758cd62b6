"""A real OTLP/HTTP receiver for the tests: an aiohttp server on 127.0.0.1 that decodes
``/v1/traces`` and ``/v1/logs`` with the official ``opentelemetry-proto`` messages.

Gzip bodies are inflated by aiohttp's server (as a Collector does). It keeps every span and
log record it accepted, and can misbehave on demand: ``status`` answers every request with
that HTTP status (``503``: a collector that is overloaded), ``hang`` holds every request open
until it is cleared, and ``stop()``/``start()`` take the port away and bring it back (a
collector that is down).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from proxy.store.embedded import free_port


def any_value(value: AnyValue) -> Any:
    """An AnyValue as plain Python (arrays as lists)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attrs(pairs: Any) -> dict[str, Any]:
    """A repeated KeyValue as a dict; a repeated key would be a bug, so it fails here."""
    out: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        assert pair.key not in out, f"attribute {pair.key} sent twice"
        out[pair.key] = any_value(pair.value)
    return out


@dataclass
class Received:
    """What arrived: every span and log record, with the resource each came under."""

    spans: list[Span] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    requests: int = 0
    gzipped: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)


class OtlpReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.received = Received()
        self.status: int | None = None
        self.hang = asyncio.Event()  # set: hold requests open
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/logs", self._logs)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            self._released.set()
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Stop hanging: held requests fail (as a collector restart would end them)."""
        self.hang.clear()
        self._released.set()

    async def _body(self, request: web.Request) -> bytes | web.Response:
        self.received.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.hang.is_set():
            self._released.clear()
            await self._released.wait()
            return web.Response(status=503)
        if self.status is not None:
            return web.Response(status=self.status)
        body = await request.read()  # aiohttp inflates a gzip body (and fails on a bad one)
        if request.headers.get("content-encoding") == "gzip":
            self.received.gzipped += 1
        assert request.headers.get("content-type") == "application/x-protobuf"
        self.received.requests += 1
        return body

    async def _traces(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        message = ExportTraceServiceRequest.FromString(body)
        for resource_spans in message.resource_spans:
            self.received.resources.append(resource_spans.resource)
            for scope in resource_spans.scope_spans:
                self.received.spans.extend(scope.spans)
        return _protobuf(ExportTraceServiceResponse().SerializeToString())

    async def _logs(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        message = ExportLogsServiceRequest.FromString(body)
        for resource_logs in message.resource_logs:
            self.received.resources.append(resource_logs.resource)
            for scope in resource_logs.scope_logs:
                self.received.logs.extend(scope.log_records)
        return _protobuf(ExportLogsServiceResponse().SerializeToString())

    # -- reading what arrived ----------------------------------------------------------------

    def spans_of(self, trace_w3c: str) -> list[Span]:
        raw = bytes.fromhex(trace_w3c)
        return [span for span in self.received.spans if span.trace_id == raw]

    def span_ids(self) -> list[str]:
        return [span.span_id.hex() for span in self.received.spans]

    def evaluations(self) -> list[dict[str, Any]]:
        return [attrs(record.attributes) for record in self.received.logs]


def _protobuf(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/x-protobuf")
