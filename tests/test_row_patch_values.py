"""PATCH of a dataset row with a value of the wrong JSON type is a 400 naming the field, and
the row is left as it was (it used to be a 500 for an object or a list)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.conftest import RunningProxy
from tests.recording_helpers import wait_for_trace

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("value", [{"a": 1}, [], ["empty"], 1, True, None])
async def test_a_non_string_annotation_status_is_400_and_changes_nothing(
    proxy: RunningProxy, http: aiohttp.ClientSession, value: object
) -> None:
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions",
        data=orjson.dumps(CHAT),
        headers={"X-Trace-Id": "row-patch"},
    ) as resp:
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, "row-patch")
    rows_url = f"{proxy.admin_url}/api/datasets/review-x/rows"
    async with http.post(rows_url, json={"trace_ids": ["row-patch"]}) as resp:
        assert resp.status == 200
    async with http.patch(f"{rows_url}/row-patch", json={"annotation_status": value}) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400
    assert error["message"] == "annotation_status: must be empty or filled"
    async with http.get(rows_url) as resp:
        (row,) = (await resp.json())["rows"]
    assert row["annotation_status"] == "empty"


@pytest.mark.parametrize("operation", [{"a": 1}, [], None, 3])
async def test_a_non_string_patch_operation_is_400(
    proxy: RunningProxy, http: aiohttp.ClientSession, operation: object
) -> None:
    """The operation form of a trace PATCH names the bad operation instead of failing."""
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions",
        data=orjson.dumps(CHAT),
        headers={"X-Trace-Id": "op-patch"},
    ) as resp:
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, "op-patch")
    body = {"attributes": [{"operation": operation, "key": "k", "value": 1}]}
    async with http.patch(f"{proxy.admin_url}/api/traces/op-patch", json=body) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400
    assert error["message"] == "attributes[0].operation: must be create or delete"
