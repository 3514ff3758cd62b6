"""The pass-through handler: one client request in, one upstream request out, bytes relayed.

Forward first, observe on the side: each upstream chunk is written to the client before
anything else looks at it, and nothing waits for the whole body. Errors before the response
started become OpenAI-shaped proxy errors; errors after it started break the client's stream
(a truncated answer must look truncated, never cleanly finished).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.call import Call
from proxy.errors import PayloadTooLarge, ProxyError, Unauthorized
from proxy.headers import PROXY_KEY_HEADER, downstream_headers, upstream_headers
from proxy.recorder import Recorder
from proxy.state import STATE, ProxyState
from proxy.trace_context import parse_trace_context
from proxy.upstream import Route, translate_errors

# Bodies up to this size are read whole before forwarding: it is already in the socket buffer,
# and a known length spares the upstream a chunked request. Larger ones are streamed.
_READ_WHOLE_BYTES = 256 * 1024
MID_STREAM_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)


async def forward(request: web.Request) -> web.StreamResponse:
    """Handle any request under ``/{upstream}/...`` or ``/v1/...``."""
    state = request.app[STATE]
    call = Call.begin(request)
    try:
        context = call.context = parse_trace_context(request.headers)
        _check_proxy_key(request, state)
        route = state.router.resolve(request.raw_path)
        recorder = call.routed(route, context, state.settings.capture)
        return await _relay(request, state, call, route, recorder)
    except ProxyError as error:
        call.fail(error)
        return call.error_response(error)
    except asyncio.CancelledError:
        call.cancelled()
        raise
    finally:
        call.finish(state)


def _check_proxy_key(request: web.Request, state: ProxyState) -> None:
    keys = state.settings.proxy.keys
    if not keys:
        return
    sent = request.headers.get(PROXY_KEY_HEADER, "").encode("utf-8", "surrogateescape")
    if not any(hmac.compare_digest(sent, key.encode()) for key in keys):
        raise Unauthorized(f"Missing or wrong {PROXY_KEY_HEADER} header.", code="invalid_proxy_key")


async def _relay(
    request: web.Request, state: ProxyState, call: Call, route: Route, recorder: Recorder
) -> web.StreamResponse:
    body = await _request_body(request, state.settings.proxy.max_body_bytes, recorder)
    headers = upstream_headers(request.headers)
    assert call.context is not None
    headers.append(("traceparent", call.context.traceparent()))
    if isinstance(body, _BodyStream) and request.content_length is not None:
        headers.append(("Content-Length", str(request.content_length)))
    with translate_errors(route.upstream.name), _body_cap(body):
        upstream = await state.session.request(
            request.method,
            URL(route.url, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=route.upstream.timeout,
        )
    try:
        return await _stream_back(request, upstream, call, recorder)
    finally:
        upstream.close()


async def _stream_back(
    request: web.Request, upstream: aiohttp.ClientResponse, call: Call, recorder: Recorder
) -> web.StreamResponse:
    call.upstream_started(upstream.status)
    recorder.response_started(
        upstream.headers.get("Content-Type", ""), upstream.headers.get("Content-Encoding", "")
    )
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(
        downstream_headers(upstream.headers.items(), upstream.headers.get("Connection"))
    )
    call.add_trace_headers(response.headers)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
            recorder.response_chunk(chunk)
    except MID_STREAM_ERRORS as exc:
        call.broken(exc)
        _break_client(request)
        return response
    await response.write_eof()
    return response


def _break_client(request: web.Request) -> None:
    """End the client's connection without a clean end of body: the break stays visible."""
    if request.transport is not None:
        request.transport.abort()


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
