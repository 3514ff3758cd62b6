"""One proxied call as it happens: its IDs, route, timing and outcome.

The handler fills it in as the call progresses; ``finish`` submits the span to the writer
and writes the one access-log line.
Kept free of I/O decisions so that the forwarding code reads as the sequence of steps it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import structlog
from aiohttp import web
from multidict import CIMultiDict

from proxy.config import CaptureSettings
from proxy.core.errors import ProxyError
from proxy.core.ids import new_span_id, new_trace_id
from proxy.core.records import Span
from proxy.feedback.token import issue
from proxy.gateway.headers import EXPOSE_HEADERS
from proxy.gateway.responses import error_response
from proxy.gateway.services import GatewayServices
from proxy.gateway.upstream import Route
from proxy.metrics.calls import MID_STREAM_BREAK, CallMetrics, upstream_error_kind
from proxy.recording import implicit
from proxy.recording.recorder import Recorder
from proxy.tracing.context import TraceContext

access_log = structlog.get_logger("proxy.access")


class Call:
    __slots__ = (
        "_fallback_ids",
        "attributes",
        "context",
        "disconnected",
        "error",
        "feedback_error",
        "feedback_status",
        "feedback_task",
        "head_sent",
        "method",
        "path",
        "recorder",
        "route",
        "started",
        "status",
        "ttfb",
        "upstream_error",
    )

    def __init__(self, method: str, path: str) -> None:
        self.started = time.perf_counter()
        self.method = method
        self.path = path
        self.context: TraceContext | None = None
        self.route: Route | None = None
        self.status: int | None = None
        self.ttfb: float | None = None
        self.error: str | None = None
        self.upstream_error: str | None = None  # a metric kind, when the upstream failed
        self.recorder: Recorder | None = None
        self.attributes: dict[str, Any] = {}
        self.feedback_task: asyncio.Task[str] | None = None
        self.feedback_status: str | None = None
        self.feedback_error: str | None = None
        self._fallback_ids: tuple[str, str] | None = None
        self.head_sent = False  # the response head went out to the client
        self.disconnected: str | None = None  # when the client left: before or during the answer

    @classmethod
    def begin(cls, request: web.Request) -> Call:
        return cls(request.method, request.path)

    @property
    def ids(self) -> tuple[str, str]:
        """(trace_id, span_id); fresh ones when the request's own could not be read."""
        if self.context is not None:
            return self.context.trace_id, self.context.span_id
        if self._fallback_ids is None:
            self._fallback_ids = (new_trace_id(), new_span_id())
        return self._fallback_ids

    def routed(self, route: Route, context: TraceContext, capture: CaptureSettings) -> Recorder:
        """From here on the call is recorded as a span, whatever happens next."""
        self.route = route
        self.recorder = Recorder(
            capture, context, route.upstream.name, self.method, route.upstream_path, self.started
        )
        return self.recorder

    def upstream_started(self, status: int) -> None:
        self.status = status
        self.ttfb = time.perf_counter()

    def fail(self, error: ProxyError) -> None:
        self.status = error.status
        self.error = error.kind
        self.upstream_error = upstream_error_kind(error.code)

    def broken(self, exc: BaseException) -> None:
        """The upstream failed after the response started."""
        timeout = isinstance(exc, TimeoutError)
        self.error = "upstream_timeout" if timeout else "upstream_broken"
        self.upstream_error = "read_timeout" if timeout else MID_STREAM_BREAK

    def cancelled(self, stage: str) -> None:
        """The client went away before the call finished; ``stage`` says whether it had the
        answer's head already (counted in ``feedback_proxy_client_disconnects_total``)."""
        self.error = "client_disconnected"
        self.disconnected = stage

    async def settle_feedback(self) -> None:
        """Wait for the feedback merge started with the call (bounded by the writer timeout)."""
        if self.feedback_task is not None and self.feedback_status is None:
            status = await self.feedback_task
            self.feedback_status = "rejected" if status == "full" else status
            if status == "full":
                self.feedback_error = "feedback history of this trace is full"

    def add_trace_headers(
        self, headers: CIMultiDict[str], services: GatewayServices, relayed: bool = True
    ) -> None:
        """IDs, what became of the request's feedback, and a feedback token for this span.

        The token only on an answer the upstream gave (``relayed``): an answer the proxy made
        itself (401, 400, 404, ...) may go to a caller who is not authorised, and a token
        would let it vote on whatever trace ID it named."""
        trace_id, span_id = self.ids
        headers["X-Trace-Id"] = trace_id
        headers["X-Span-Id"] = span_id
        theirs = headers.get("Access-Control-Expose-Headers")
        headers["Access-Control-Expose-Headers"] = (
            f"{theirs}, {EXPOSE_HEADERS}" if theirs else EXPOSE_HEADERS
        )
        if relayed:
            expires = int(time.time()) + services.settings.feedback.token_ttl_seconds
            headers["X-Feedback-Token"] = issue(services.token_secret, trace_id, span_id, expires)
        if self.feedback_status:
            headers["X-Feedback-Status"] = self.feedback_status
        if self.feedback_error:
            headers["X-Feedback-Error"] = self.feedback_error

    async def error_response(self, error: ProxyError, services: GatewayServices) -> web.Response:
        await self.settle_feedback()
        response = error_response(error)
        self.add_trace_headers(response.headers, services, relayed=False)
        return response

    def finish(self, services: GatewayServices) -> None:
        """Submit the span (never blocks), count the call, and write the access line."""
        span = None
        if self.recorder is not None and services.settings.capture.record:
            record = self.recorder.record(self.attributes, self.status, self.error)
            if services.settings.implicit.enabled:
                recorder = self.recorder
                streaming, parsed = recorder.streaming, recorder.request_input()
                now_ms = time.time() * 1000
                implicit.observe(record, self.error, streaming, parsed, now_ms, services.hash_key)
            services.writer.submit(record)
            span = record["span"]
            services.feedback.span_recorded(record["trace"]["trace_id"], span["model"])
        self._observe(services.call_metrics, span)
        self._log()

    def _observe(self, metrics: CallMetrics, span: Span | None) -> None:
        """The call's metrics; model and usage come from the span (unknown when not recorded)."""
        recorder = self.recorder
        ttft = None
        if recorder is not None and recorder.stream and recorder.first_byte_at is not None:
            ttft = recorder.first_byte_at - self.started
        metrics.observe(
            upstream=self.route.upstream.name if self.route is not None else "",
            model=span["model"] if span is not None else None,
            status=self.status,
            duration=time.perf_counter() - self.started,
            ttft=ttft,
            usage=span["usage"] if span is not None else None,
            error=self.upstream_error,
            disconnected=self.disconnected,
        )

    def _log(self) -> None:
        if not access_log.is_enabled_for(logging.INFO):
            return  # the fields below cost a few µs per request; skip them when unused
        now = time.perf_counter()
        trace_id, span_id = self.ids
        access_log.info(
            "request",
            trace_id=trace_id,
            span_id=span_id,
            upstream=self.route.upstream.name if self.route else None,
            method=self.method,
            path=self.path,
            status=self.status,
            duration_ms=round((now - self.started) * 1000, 2),
            ttfb_ms=round((self.ttfb - self.started) * 1000, 2) if self.ttfb else None,
            bytes_out=self.recorder.response_bytes if self.recorder else 0,
            error=self.error,
        )
