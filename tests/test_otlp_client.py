"""The OTLP client's one request: a redirect from the collector's address is not followed, so
the configured headers (credentials, often) never reach another server."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.exporters.otlp.client import OtlpClient, SendFailed, export_session


async def test_a_redirect_is_refused_and_the_headers_go_nowhere_else() -> None:
    reached: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(dict(request.headers))
        return web.Response()

    other = web.Application()
    other.router.add_post("/v1/traces", elsewhere)
    async with TestServer(other, host="127.0.0.1") as target:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(str(target.make_url("/v1/traces")))

        collector = web.Application()
        collector.router.add_post("/v1/traces", redirect)
        async with (
            TestServer(collector, host="127.0.0.1") as server,
            export_session(5.0) as session,
        ):
            client = OtlpClient(session, str(server.make_url("")), {"x-api-key": "secret"})
            with pytest.raises(SendFailed) as refused:
                await client.send("/v1/traces", b"")
    assert refused.value.kind == "status"
    assert not refused.value.retryable
    assert reached == []
