"""The pass-through handler: one client request in, one upstream request out, bytes relayed.

Forward first, observe on the side: each upstream chunk is written to the client before
anything else looks at it, and nothing waits for the whole body. Errors before the response
started become OpenAI-shaped proxy errors; errors after it started break the client's stream
(a truncated answer must look truncated, never cleanly finished).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.core.errors import PayloadTooLarge, ProxyError, Unauthorized
from proxy.feedback.events import feedback_record, request_feedback
from proxy.feedback.parse import FEEDBACK_KEYS, Feedback, InvalidFeedback
from proxy.gateway.auth import PROXY_KEY_HEADER, proxy_key_ok
from proxy.gateway.call import Call
from proxy.gateway.capture import capture_for
from proxy.gateway.headers import downstream_headers, upstream_headers
from proxy.gateway.services import GATEWAY, GatewayServices
from proxy.gateway.upstream import Route, translate_errors
from proxy.metrics.calls import BEFORE_RESPONSE, DURING_RESPONSE
from proxy.recording.recorder import Recorder
from proxy.tracing.context import TraceContext, parse_trace_context

# Bodies up to this size are read whole before forwarding: it is already in the socket buffer,
# and a known length spares the upstream a chunked request. Larger ones are streamed.
_READ_WHOLE_BYTES = 256 * 1024
MID_STREAM_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)


async def forward(request: web.Request) -> web.StreamResponse:
    """Handle any request under ``/{upstream}/...`` or ``/v1/...``."""
    services = request.app[GATEWAY]
    call = Call.begin(request)
    try:
        context = call.context = parse_trace_context(request.headers)
        _check_proxy_key(request, services)
        route = services.router.resolve(request.raw_path)
        capture = capture_for(request.headers, services.settings.capture)
        # A header that cannot be re-sent as it came is refused here, before the call is
        # recorded: a refused request leaves no span.
        headers = upstream_headers(request.headers)
        call.attributes, feedback = _read_feedback(request, services, call, context)
        recorder = call.routed(route, context, capture)
        return await _relay(request, services, call, (route, headers), recorder, feedback)
    except ProxyError as error:
        call.fail(error)
        return await call.error_response(error, services)
    except asyncio.CancelledError:
        call.cancelled(DURING_RESPONSE if call.head_sent else BEFORE_RESPONSE)
        raise
    finally:
        call.finish(services)


def _read_feedback(
    request: web.Request, services: GatewayServices, call: Call, context: TraceContext
) -> tuple[dict[str, Any], Feedback | None]:
    """The call's plain trace attributes and its feedback; bad feedback is a 400, or with
    ``feedback.on_invalid = "warn"`` dropped whole and reported in X-Feedback-Error."""
    try:
        return request_feedback(request.headers, context, services.feedback_rules)
    except InvalidFeedback as error:
        if services.settings.feedback.on_invalid != "warn":
            raise
        call.feedback_error = error.message
        plain = {k: v for k, v in context.attributes.items() if k not in FEEDBACK_KEYS}
        return plain, None


def _check_proxy_key(request: web.Request, services: GatewayServices) -> None:
    if not proxy_key_ok(request.headers, services.settings.proxy.keys):
        raise Unauthorized(f"Missing or wrong {PROXY_KEY_HEADER} header.", code="invalid_proxy_key")


async def _relay(
    request: web.Request,
    services: GatewayServices,
    call: Call,
    target: tuple[Route, list[tuple[str, str]]],
    recorder: Recorder,
    feedback: Feedback | None,
) -> web.StreamResponse:
    """Forward to ``target`` (the route and the headers that go upstream) and relay back."""
    route, headers = target
    body = await _request_body(request, services.settings.proxy.max_body_bytes, recorder)
    headers.append(("traceparent", recorder.context.traceparent()))
    streamed = isinstance(body, _BodyStream)
    if feedback is not None and not streamed:  # the request is known to be forwarded
        call.feedback_task = _start_feedback(services, recorder, feedback)
    if streamed and request.content_length is not None:
        headers.append(("Content-Length", str(request.content_length)))
    with translate_errors(route.upstream.name), _body_cap(body):
        upstream = await services.session.request(
            request.method,
            URL(route.url, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=route.upstream.timeout,
        )
    if feedback is not None and streamed:  # a streamed body could still have gone over the cap
        call.feedback_task = _start_feedback(services, recorder, feedback)
    try:
        return await _stream_back(request, services, upstream, call, recorder)
    finally:
        upstream.close()


def _start_feedback(
    services: GatewayServices, recorder: Recorder, feedback: Feedback
) -> asyncio.Task[str]:
    """Merge the call's feedback while the upstream answers; counted under the call's model."""
    record = feedback_record(recorder.context.trace_id, feedback, source="header")
    return services.feedback.start(record, model=recorder.request_model())


async def _stream_back(
    request: web.Request,
    services: GatewayServices,
    upstream: aiohttp.ClientResponse,
    call: Call,
    recorder: Recorder,
) -> web.StreamResponse:
    call.upstream_started(upstream.status)
    recorder.response_started(
        upstream.headers.get("Content-Type", ""), upstream.headers.get("Content-Encoding", "")
    )
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(
        downstream_headers(upstream.headers.items(), upstream.headers.get("Connection"))
    )
    await call.settle_feedback()
    call.add_trace_headers(response.headers, services)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    try:
        await response.prepare(request)
    except ConnectionError:
        # The client reset or closed its connection in the same loop turn as the upstream's
        # head arrived (aiohttp cancels the handler only a turn later): it left, as below.
        call.cancelled(BEFORE_RESPONSE)
        return response  # aiohttp's own write_eof on it fails quietly (it expects this)
    call.head_sent = True
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
            recorder.response_chunk(chunk)
    except MID_STREAM_ERRORS as exc:
        # aiohttp reports a client gone mid-write as a ClientConnectionError too.
        if request.transport is None or request.transport.is_closing():
            call.cancelled(DURING_RESPONSE)
        else:
            call.broken(exc)
            request.transport.abort()  # no clean end of body: the break stays visible
        return response
    try:
        await response.write_eof()
    except ConnectionError:
        call.cancelled(DURING_RESPONSE)
    return response


async def _request_body(
    request: web.Request, limit: int, recorder: Recorder
) -> bytes | _BodyStream | None:
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(
            f"Request body of {length} bytes exceeds proxy.max_body_bytes ({limit}).",
            code="body_too_large",
        )
    if not request.body_exists:
        return None
    if length is not None and length <= _READ_WHOLE_BYTES:
        body = await request.read()
        recorder.request_body(body)
        return body
    return _BodyStream(request.content, limit, recorder)


class _BodyStream:
    """Streams a request body upstream, stopping at the size cap."""

    def __init__(self, content: aiohttp.StreamReader, limit: int, recorder: Recorder) -> None:
        self._content = content
        self._recorder = recorder
        self.limit = limit
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._content.iter_any():
            sent += len(chunk)
            if sent > self.limit:
                self.exceeded = True
                raise PayloadTooLarge("request body over proxy.max_body_bytes")
            self._recorder.request_body(chunk)
            yield chunk


@contextmanager
def _body_cap(body: bytes | _BodyStream | None) -> Iterator[None]:
    """Report a streamed body that went over the cap as 413, whatever aiohttp wrapped it in."""
    try:
        yield
    except Exception:
        if isinstance(body, _BodyStream) and body.exceeded:
            raise PayloadTooLarge(
                f"Request body exceeds proxy.max_body_bytes ({body.limit}).", code="body_too_large"
            ) from None
        raise
