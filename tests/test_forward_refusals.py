"""Calls the proxy refuses are neither forwarded nor recorded."""

from __future__ import annotations

import aiohttp

from tests.clients import raw_call
from tests.conftest import RunningProxy
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_for_trace


async def test_a_header_that_cannot_be_forwarded_is_refused_and_not_recorded(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A header value that is not UTF-8 cannot be re-sent as it came: 400 naming the header,
    nothing forwarded, and no span (tests/test_http_properties.py found such calls recorded)."""
    port = int(proxy.url.rsplit(":", 1)[1])
    before = len(fake_provider.requests)
    assert await raw_call(port, [(b"X-Custom", b"caf\xe9")], "hp-latin1") == 400
    assert len(fake_provider.requests) == before
    async with http.post(f"{proxy.url}/openai/v1/chat/completions",
                         json={"model": "gpt-4o-mini", "messages": []},
                         headers={"X-Trace-Id": "hp-after"}) as resp:  # fmt: skip
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, "hp-after")
    async with http.get(f"{proxy.admin_url}/api/traces/hp-latin1") as resp:
        assert resp.status == 404
