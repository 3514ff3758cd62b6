"""The proxy's own error family.

Each error knows its HTTP status, a low-cardinality ``kind`` for logs and metrics, and renders
the OpenAI error shape, because that is the shape every SDK pointed at us already understands.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class ProxyError(Exception):
    """An error the proxy itself answers (never an upstream's own answer)."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "proxy_error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.kind
        self.extra = extra

    def body(self) -> bytes:
        """The OpenAI-shaped JSON body: ``{"error": {"message", "type", "code"}}``."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        error.update(self.extra)
        return orjson.dumps({"error": error})


class BadRequest(ProxyError):
    status = 400
    kind = "bad_request"
    type = "invalid_request_error"


class Unauthorized(ProxyError):
    status = 401
    kind = "unauthorized"
    type = "authentication_error"


class NotFound(ProxyError):
    status = 404
    kind = "not_found"
    type = "invalid_request_error"


class MethodNotAllowed(ProxyError):
    status = 405
    kind = "method_not_allowed"
    type = "invalid_request_error"


class PayloadTooLarge(ProxyError):
    status = 413
    kind = "payload_too_large"
    type = "invalid_request_error"


class UpstreamUnreachable(ProxyError):
    status = 502
    kind = "upstream_unreachable"
    type = "upstream_error"


class UpstreamTimeout(ProxyError):
    status = 504
    kind = "upstream_timeout"
    type = "upstream_error"


class StoreUnavailable(Exception):
    """Redis is down, slow past its timeout, or refused the command (e.g. a cluster slot down).

    The writer answers it by spooling, feedback by ``queued``, the admin API by 503. Raised
    only by ``proxy.store``, which translates redis-py's exceptions in one place; it lives here
    so that the writer and the feedback service can catch it without importing redis.
    """
