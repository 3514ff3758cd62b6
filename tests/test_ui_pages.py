"""The Monitor page's handlers without a browser: what they answer, escape, refuse and protect.

Each test talks HTTP to a real admin listener on loopback over a real Redis, and reads the
HTML the way a reviewer's browser would get it. The browser-driven flows are in
``test_ui_browser.py``.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from proxy.store.redis_store import RedisStore
from tests.conftest import RunningProxy
from tests.ui_data import seed_history, seed_reviewer_traces

CSP = "default-src 'self'"


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with http.get(url, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_every_view_renders_with_the_csp_header(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Traces, trace, datasets, dataset and trends answer 200 HTML with the CSP header."""
    ids = await seed_reviewer_traces(store)
    await seed_history(store, days=3, per_day=4)
    async with http.post(f"{admin.admin_url}/api/datasets/review/rows",
                         json={"trace_ids": [ids["negative"]]}) as resp:  # fmt: skip
        assert resp.status == 200
    for path in (
        "/ui/traces",
        f"/ui/traces/{ids['negative']}",
        "/ui/datasets",
        "/ui/datasets/review",
        "/ui/trends",
        "/ui/trends?bucket=hour&group_by=model",
    ):
        status, body, headers = await _get(http, admin.admin_url + path)
        assert status == 200, (path, body[:2000])
        assert headers["Content-Security-Policy"] == CSP
        assert headers["Content-Type"].startswith("text/html")
        assert "<script" not in body.replace("&lt;script", "")
