"""What every admin route shares: the state key and the JSON answer helpers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from proxy.runtime.state import ProxyState

ADMIN_STATE = web.AppKey("admin_state", ProxyState)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    """Admin errors use the same shape as the proxy's: ``{"error": {message, type, code}}``."""
    error = {"message": message, "type": "admin_error", "code": code}
    return json_response({"error": error}, status=status)
