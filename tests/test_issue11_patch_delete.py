"""Issue 11 item 10: deleting ``user_feedback`` through PATCH takes the thumbs tag with it, in
the trace and in the tag's index; an explicitly deleted tag leaves its index too."""

from __future__ import annotations

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.store.keys import Keys
from tests.conftest import RunningProxy
from tests.recording_helpers import wait_for_trace
from tests.test_admin_patch import patch, recorded

pytestmark = pytest.mark.redis_backends


async def tagged(http: aiohttp.ClientSession, proxy: RunningProxy, tag: str) -> list[str]:
    """The trace IDs GET /api/traces lists under ``tag``."""
    async with http.get(f"{proxy.admin_url}/api/traces", params={"tag": tag}) as response:
        assert response.status == 200
        return [t["trace_id"] for t in (await response.json())["traces"]]


async def test_deleting_the_vote_removes_the_thumbs_tag_and_its_index_entry(
    proxy: RunningProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await recorded(proxy, http, "p-unvote")
    url = f"{proxy.admin_url}/api/traces/p-unvote"
    assert (await patch(http, url, {"attributes": {"user_feedback": "negative"}}))[0] == 200
    assert await tagged(http, proxy, "thumbs-down") == ["p-unvote"]
    delete = {"attributes": [{"operation": "delete", "key": "user_feedback"}]}
    status, body = await patch(http, url, delete)
    assert (status, body["status"]) == (200, "applied")
    trace = await wait_for_trace(http, proxy.admin_url, "p-unvote")
    assert "user_feedback" not in trace["attributes"]
    assert "thumbs-down" not in trace["tags"]
    assert await redis_client.zscore(keys.index("tag", "thumbs-down"), "p-unvote") is None
    indexes = await redis_client.smembers(keys.trace("p-unvote").indexes)
    assert keys.index("tag", "thumbs-down").encode() not in indexes
    assert await tagged(http, proxy, "thumbs-down") == []


async def test_a_vote_again_after_the_delete_is_indexed_again(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    await recorded(proxy, http, "p-revote")
    url = f"{proxy.admin_url}/api/traces/p-revote"
    await patch(http, url, {"attributes": {"user_feedback": "negative"}})
    await patch(http, url, {"attributes": [{"operation": "delete", "key": "user_feedback"}]})
    await patch(http, url, {"attributes": {"user_feedback": "negative"}})
    assert await tagged(http, proxy, "thumbs-down") == ["p-revote"]


async def test_a_deleted_tag_leaves_its_index(
    proxy: RunningProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await recorded(proxy, http, "p-untag")
    url = f"{proxy.admin_url}/api/traces/p-untag"
    await patch(http, url, {"tags": ["reviewed"]})
    assert await redis_client.zscore(keys.index("tag", "reviewed"), "p-untag") is not None
    await patch(http, url, {"tags": [{"operation": "delete", "tag": "reviewed"}]})
    assert await redis_client.zscore(keys.index("tag", "reviewed"), "p-untag") is None
