"""The admin listener's answers: JSON bodies, and the one error path.

Handlers raise; ``errors_as_json`` turns our error family (``proxy.core.errors``) into the
same ``{"error": {"message", "type", "code", ...}}`` body the proxy listener answers, extra
fields such as ``param`` included, and a Redis outage into a 503 of that shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.core.errors import ProxyError, StoreUnavailable


class RedisUnavailable(ProxyError):
    status: ClassVar[int] = 503
    kind: ClassVar[str] = "redis_unavailable"
    type: ClassVar[str] = "service_unavailable"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(error: ProxyError) -> web.Response:
    return web.Response(status=error.status, body=error.body(), content_type="application/json")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place admin errors become answers."""
    try:
        return await handler(request)
    except ProxyError as error:
        return error_response(error)
    except StoreUnavailable:
        return error_response(RedisUnavailable("Redis is unreachable; try again shortly."))
