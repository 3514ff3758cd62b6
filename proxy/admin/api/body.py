"""Reading an admin request's JSON body: capped, and refused with a 400 naming ``body``."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from proxy.core.errors import BadRequest


async def json_body(request: web.Request, max_bytes: int) -> Any:
    """The parsed body; at most ``max_bytes`` are read (one more tells it is over)."""
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise BadRequest(f"body: over {max_bytes} bytes", code="invalid_body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body: must be JSON", code="invalid_body") from None
