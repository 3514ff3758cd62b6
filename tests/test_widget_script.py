"""GET /feedback.js: the widget script as other origins and caches see it (§14)."""

from __future__ import annotations

import gzip

import aiohttp
import orjson

from proxy.gateway.widget import REASONS_MARK, widget_scripts
from tests.conftest import RunningProxy, StartProxy

OTHER_ORIGIN = {"Origin": "http://app.example"}


async def test_the_script_is_public_cached_and_revalidated_with_its_etag(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """200 with CORS, a validator and a cache lifetime; the same ETag back answers 304 with
    no body; another ETag gets the script again."""
    plain = {**OTHER_ORIGIN, "Accept-Encoding": "identity"}
    async with http.get(f"{proxy.url}/feedback.js", headers=plain) as response:
        body = await response.read()
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Cache-Control"] == "public, max-age=600"
        assert "Content-Encoding" not in response.headers
        etag = response.headers["ETag"]
    assert b'customElements.define("feedback-widget"' in body
    again = {**plain, "If-None-Match": etag}
    async with http.get(f"{proxy.url}/feedback.js", headers=again) as response:
        assert response.status == 304
        assert await response.read() == b""
        assert response.headers["ETag"] == etag
    weak = {**plain, "If-None-Match": f'"other", W/{etag}'}
    async with http.get(f"{proxy.url}/feedback.js", headers=weak) as response:
        assert response.status == 304
    stale = {**plain, "If-None-Match": '"an-old-version"'}
    async with http.get(f"{proxy.url}/feedback.js", headers=stale) as response:
        assert response.status == 200
        assert await response.read() == body


async def test_gzip_is_served_to_clients_that_take_it_under_its_own_etag(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """The gzip answer inflates to the plain script; its ETag differs and validates too."""
    async with http.get(f"{proxy.url}/feedback.js", headers={"Accept-Encoding": "identity"}) as r:
        plain, plain_etag = await r.read(), r.headers["ETag"]
    async with http.get(f"{proxy.url}/feedback.js", headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Vary"] == "Accept-Encoding"
        packed, packed_etag = await r.read(), r.headers["ETag"]
    assert gzip.decompress(packed) == plain
    assert packed_etag != plain_etag
    headers = {"Accept-Encoding": "gzip", "If-None-Match": packed_etag}
    async with http.get(f"{proxy.url}/feedback.js", headers=headers) as r:
        assert r.status == 304


async def test_the_script_offers_the_configured_reasons(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """The proxy writes its own reason taxonomy into the script, so the widget offers exactly
    the reasons POST /feedback accepts."""
    proxy = await start(**{"feedback.reasons": ["tone", "made_up_facts"]})
    async with http.get(f"{proxy.url}/feedback.js", headers={"Accept-Encoding": "identity"}) as r:
        body = await r.read()
    assert b'const REASONS = ["tone","made_up_facts"];' in body
    assert REASONS_MARK not in body


def test_script_size_stays_small() -> None:
    """The widget stays a small drop-in: under 10 KiB as sent, under 4 KiB gzipped."""
    plain, packed = widget_scripts(["wrong_policy", "hallucination", "other"])
    assert len(plain.body) < 10 * 1024
    assert len(packed.body) < 4 * 1024
    assert orjson.dumps(["wrong_policy", "hallucination", "other"]) in plain.body


async def test_the_script_needs_no_proxy_key_and_answers_head(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Where proxy keys guard the model routes, the public script still loads (a page cannot
    hold a key); HEAD gives its headers without the body."""
    proxy = await start(**{"proxy.keys": ["sk-proxy-only"]})
    async with http.get(f"{proxy.url}/feedback.js") as response:
        assert response.status == 200
        etag = response.headers["ETag"]
    async with http.head(f"{proxy.url}/feedback.js") as response:
        assert response.status == 200
        assert response.headers["ETag"] == etag
        assert await response.read() == b""
    async with http.post(f"{proxy.url}/v1/chat/completions", json={}) as response:
        assert response.status == 401  # the model route does need the key
