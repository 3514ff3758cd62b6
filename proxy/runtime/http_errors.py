"""Requests aiohttp rejects before any handler runs: one safe log line, one safe 400.

aiohttp's HTTP parser quotes the offending line in its exception, and its server then logs
that exception as a multi-line ERROR traceback and sends the text back as the 400 body. A
malformed ``Authorization`` or ``x-api-key`` value thus put a credential into the log (and
into the client's error, which SDKs log in turn). Two pieces close that:

- ``ServerLogFilter`` sits on aiohttp's ``aiohttp.server`` logger (installed by
  ``configure_logging``) and turns each of its records into one structlog event that carries
  the exception's type and a short reason, never the text aiohttp quoted. It needs nothing of
  aiohttp's internals, so it holds whatever listener or aiohttp version logs through it.
- ``SafeAppRunner`` makes the listener answer such a request with the proxy's JSON error,
  naming the problem (and the header, when aiohttp says which), never echoing a value.
"""

from __future__ import annotations

import logging
import re
import traceback

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError

from proxy.core.errors import BadRequest

log = structlog.get_logger("proxy.http")
SERVER_LOGGER = "aiohttp.server"
_MAX_REASON = 80
# aiohttp's C parser quotes the bad line as bytes, b'Name: value': the name is the token
# before the first colon (a header name is no secret; its value may be).
_QUOTED_TOKEN = re.compile(r"'([A-Za-z0-9-]{1,64})'")
_QUOTED_NAME = re.compile(r"\n\s*b['\"]([A-Za-z0-9!#$%&*+.^_`|~-]{1,64}):")


def safe_reason(exc: BaseException | None) -> str:
    """What was wrong, from aiohttp's message up to where it starts quoting the request."""
    message = getattr(exc, "message", "")
    text = message if isinstance(message, str) else ""
    text = _QUOTED_TOKEN.sub(r"\1", text)  # "Duplicate 'Content-Length' header found."
    head = re.split(r"[:'\"\n\\]", text, maxsplit=1)[0].strip()
    if not head.isascii() or not head.isprintable():
        head = ""
    reason = head[:_MAX_REASON] or "malformed HTTP request"
    name = _QUOTED_NAME.search(text)
    return f"{reason} (header {name.group(1)})" if name else reason


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame: enough to find a bug, no values from it."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class ServerLogFilter(logging.Filter):
    """Re-emits each ``aiohttp.server`` record as one structlog event and drops the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # A scanner's garbage on the port is noise (aiohttp too logs it at debug).
            emit = log.debug if isinstance(exc, BadHttpMethod) else log.warning
            emit("bad http request", status=exc.code, error=type(exc).__name__,
                 reason=safe_reason(exc))  # fmt: skip
        elif exc is not None:
            log.error("http server error", error=type(exc).__name__, where=_where(exc))
        else:
            log.log(record.levelno, "http server", message=record.getMessage())
        return False


def install_server_log_filter() -> None:
    """Idempotent: one ``ServerLogFilter`` on aiohttp's server logger."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ServerLogFilter) for f in logger.filters):
        logger.addFilter(ServerLogFilter())


class SafeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, but a malformed request's 400 carries no request text."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp logs (through ServerLogFilter) and checks the connection; its 5xx text is
        # generic, its 4xx text is the parser's message quoting the bad line.
        answer = super().handle_error(request, status, exc, message)
        if status >= 500:
            return answer
        error = BadRequest(f"Malformed HTTP request: {safe_reason(exc)}.", code="bad_http_request")
        safe = web.Response(status=status, body=error.body(), content_type="application/json")
        safe.force_close()
        return safe


class _SafeServer(web.Server):
    """aiohttp's low-level server, making ``SafeRequestHandler`` connections."""

    def __call__(self) -> web.RequestHandler:
        return SafeRequestHandler(self, loop=self._loop, **self._kwargs)


class SafeAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections use ``SafeRequestHandler``.

    ``_make_server`` and ``Server._kwargs`` are aiohttp internals, unchanged from 3.0 to 3.14;
    tests/test_issue11_http.py fails if a release changes them."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _SafeServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
