"""The ``Expect`` request header, answered before any route's handler runs.

aiohttp's default expect handler answers an unknown expectation with a 417 whose text repeats
the value, and fails with a 500 when the value is not UTF-8 (it cannot encode the echo). Here
``100-continue`` keeps aiohttp's behaviour, anything else is refused by name only: 400 for
bytes that are not UTF-8 (as for every other header), 417 for another expectation.
Every route takes ``expect_handler=expect_handler`` (see ``app.create_app``).
"""

from __future__ import annotations

from aiohttp import HttpVersion11, hdrs, web

from proxy.core.errors import BadRequest, ProxyError
from proxy.core.ids import is_valid_utf8
from proxy.gateway.responses import error_response

CONTINUE = "100-continue"  # the only expectation HTTP defines (RFC 9110 §10.1.1)


class ExpectationFailed(ProxyError):
    status = 417
    kind = "expectation_failed"
    type = "invalid_request_error"


def expectation_error(value: str) -> ProxyError | None:
    """The error for an ``Expect`` value the proxy cannot meet, or None for 100-continue."""
    if not is_valid_utf8(value):
        return BadRequest("Expect: not valid UTF-8", code="invalid_header")
    if value.strip().lower() != CONTINUE:
        return ExpectationFailed(
            f"Expect: only {CONTINUE} is supported", code="unsupported_expectation"
        )
    return None


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's hook for a request with ``Expect``: None lets the route's handler run."""
    error = expectation_error(request.headers.get(hdrs.EXPECT, ""))
    if error is not None:
        # Returned before the handler and its middlewares: the bare JSON error, and the
        # connection closes (the client may be holding back a body it will never send).
        answer = error_response(error)
        answer.force_close()
        return answer
    if request.version >= HttpVersion11:  # an HTTP/1.0 client's 100-continue is ignored
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the response's start
    return None
