"""Issue 11 item 8: a timestamp with no feedback value is not feedback, wherever it arrives.

Headers refused it already; JSON attributes (``POST /feedback``, admin ``PATCH``) and
``X-Trace-Attributes`` stored it. One rule now: 400 naming the key, nothing forwarded or stored.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from proxy.feedback.parse import InvalidFeedback, require_feedback_value, validate_attributes
from tests.conftest import RunningProxy
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_for_trace
from tests.test_feedback import NOW, RULES
from tests.test_feedback_flow import flushed_absent, raw_call

STAMP = "2026-11-26T12:00:00Z"
NO_VALUE = "carries no feedback value; send one of user_feedback, user_feedback_rating"


def test_json_timestamp_alone_is_refused_naming_the_key() -> None:
    """A whole feedback event (default_timestamp) needs a value beside its timestamp."""
    attrs = {"env": "prod", "user_feedback_timestamp": STAMP}
    with pytest.raises(InvalidFeedback) as info:
        validate_attributes(attrs, RULES, NOW, "attributes", default_timestamp=True)
    assert info.value.source == "attributes.user_feedback_timestamp"
    assert info.value.rule.startswith(NO_VALUE)


def test_json_timestamp_with_a_value_is_kept() -> None:
    """The rule is about a missing value, not the timestamp: with a value it stays."""
    attrs = {"feedback_reason": "other", "user_feedback_timestamp": STAMP}
    result = validate_attributes(attrs, RULES, NOW, "attributes", default_timestamp=True)
    assert result["user_feedback_timestamp"] == "2026-11-26T12:00:00.000Z"
    require_feedback_value(result, "attributes")  # no error


def test_require_feedback_value_passes_attributes_without_feedback_keys() -> None:
    """Plain attributes (an admin's annotation) carry no timestamp: nothing to refuse."""
    require_feedback_value({"annotation_status": "filled"}, "attributes")


async def test_post_feedback_body_with_only_a_timestamp_is_400(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    body = {"trace_id": "ts-only", "attributes": {"user_feedback_timestamp": STAMP}}
    async with http.post(f"{proxy.url}/feedback", data=orjson.dumps(body)) as resp:
        assert resp.status == 400
        error = orjson.loads(await resp.read())["error"]
    assert error["code"] == "invalid_feedback"
    assert error["message"].startswith(f"attributes.user_feedback_timestamp: {NO_VALUE}")
    assert await flushed_absent(http, proxy, "ts-only")


async def test_trace_attributes_with_only_a_timestamp_is_400_and_nothing_forwarded(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    attributes = orjson.dumps({"user_feedback_timestamp": STAMP}).decode()
    headers = {"X-Trace-Id": "ts-attr", "X-Trace-Attributes": attributes}
    status, body, _ = await raw_call(http, proxy, headers)
    assert status == 400
    assert body["error"]["code"] == "invalid_feedback"
    assert "user_feedback_timestamp" in body["error"]["message"]
    assert fake_provider.requests == []
    assert await flushed_absent(http, proxy, "ts-attr")


async def test_patch_with_only_a_timestamp_is_400_and_changes_nothing(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await raw_call(http, proxy, {"X-Trace-Id": "ts-patch"})
    assert status == 200
    await wait_for_trace(http, proxy.admin_url, "ts-patch")
    body = orjson.dumps({"attributes": {"user_feedback_timestamp": STAMP}})
    async with http.patch(f"{proxy.admin_url}/api/traces/ts-patch", data=body) as resp:
        assert resp.status == 400
        error = orjson.loads(await resp.read())["error"]
    assert error["message"].startswith(f"attributes.user_feedback_timestamp: {NO_VALUE}")
    trace = await wait_for_trace(http, proxy.admin_url, "ts-patch")
    assert trace["attributes"] == {}
