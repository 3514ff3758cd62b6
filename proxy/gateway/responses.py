"""The proxy listener's one way to answer with its own error: the OpenAI error shape."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from proxy.core.errors import ProxyError


def error_response(error: ProxyError, headers: Mapping[str, str] | None = None) -> web.Response:
    """``{"error": {"message", "type", "code", ...}}`` with the error's status."""
    return web.Response(
        status=error.status, body=error.body(), content_type="application/json", headers=headers
    )
