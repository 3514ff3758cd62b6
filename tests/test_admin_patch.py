"""PATCH /api/traces/{id} and /spans/{span_id}: the same validation and merge as headers."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.conftest import RunningProxy
from tests.recording_helpers import wait_for_trace

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


async def recorded(proxy: RunningProxy, http: aiohttp.ClientSession, trace_id: str) -> str:
    """Make one call in ``trace_id`` and return its span ID once recorded."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=CHAT,
                         headers={"X-Trace-Id": trace_id}) as resp:  # fmt: skip
        span_id = resp.headers["X-Span-Id"]
    await wait_for_trace(http, proxy.admin_url, trace_id)
    return span_id


async def patch(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with http.patch(url, data=orjson.dumps(body)) as resp:
        return resp.status, orjson.loads(await resp.read())


async def test_flat_patch_merges_attributes_and_tags(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A flat body merges like feedback headers and answers with the applied status."""
    await recorded(proxy, http, "p-flat")
    status, body = await patch(http, f"{proxy.admin_url}/api/traces/p-flat",
                               {"attributes": {"user_feedback": "Negative", "team": "a"},
                                "tags": ["reviewed"]})  # fmt: skip
    assert status == 200
    assert body == {"trace_id": "p-flat", "applied": True, "status": "applied"}
    trace = await wait_for_trace(http, proxy.admin_url, "p-flat")
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["attributes"]["team"] == "a"
    assert {"reviewed", "thumbs-down"} <= set(trace["tags"])
    assert trace["feedback"][-1]["source"] == "api"


async def test_adaline_operation_form_creates_and_deletes(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Adaline's operation form creates and deletes attributes and tags."""
    await recorded(proxy, http, "p-ops")
    url = f"{proxy.admin_url}/api/traces/p-ops"
    await patch(http, url, {"attributes": {"a": 1, "b": 2}, "tags": ["x", "y"]})
    status, _ = await patch(http, url, {
        "attributes": [{"operation": "create", "key": "c", "value": 3},
                       {"operation": "delete", "key": "a"}],
        "tags": [{"operation": "delete", "tag": "x"}, {"operation": "create", "tag": "z"}],
    })  # fmt: skip
    assert status == 200
    trace = await wait_for_trace(http, proxy.admin_url, "p-ops")
    assert trace["attributes"] == {"b": 2, "c": 3}
    assert set(trace["tags"]) == {"y", "z"}


async def test_span_patch_targets_the_span(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """PATCH on a span changes that span's attributes only."""
    span_id = await recorded(proxy, http, "p-span")
    status, _ = await patch(http, f"{proxy.admin_url}/api/traces/p-span/spans/{span_id}",
                            {"attributes": {"user_feedback_rating": 2}})  # fmt: skip
    assert status == 200
    trace = await wait_for_trace(http, proxy.admin_url, "p-span")
    assert trace["spans"][0]["attributes"]["user_feedback_rating"] == 2
    assert "user_feedback_rating" not in trace["attributes"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"attributes": {"user_feedback_rating": "nan"}}, "user_feedback_rating"),
        ({"attributes": {"user_feedback_category": "nope"}}, "user_feedback_category"),
        ({"attributes": [{"operation": "upsert", "key": "a"}]}, "operation"),
        ({"attributes": [{"operation": "create", "key": "a"}]}, "value"),
        ({"tags": "x"}, "tags"),
        ({}, "nothing"),
        ({"other": 1}, "body"),
    ],
)
async def test_invalid_patch_is_400_and_changes_nothing(
    body: object, named: str, proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A bad PATCH names what was wrong and leaves the trace as it was."""
    await recorded(proxy, http, "p-bad")
    status, answer = await patch(http, f"{proxy.admin_url}/api/traces/p-bad", body)
    assert status == 400
    assert named in answer["error"]["message"]
    trace = await wait_for_trace(http, proxy.admin_url, "p-bad")
    assert trace["feedback"] == []
    assert trace["attributes"] == {}


async def test_patch_of_unknown_trace_or_span_is_404(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """PATCH never creates a trace or span that does not exist."""
    await recorded(proxy, http, "p-known")
    body = {"attributes": {"user_feedback": "positive"}}
    status, _ = await patch(http, f"{proxy.admin_url}/api/traces/p-unknown", body)
    assert status == 404
    status, _ = await patch(http, f"{proxy.admin_url}/api/traces/p-known/spans/nope", body)
    assert status == 404
