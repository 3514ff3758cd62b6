"""One tag rule wherever a tag arrives: X-Trace-Tags, POST /feedback bodies, admin PATCH
bodies and the trace-list filter all refuse an empty tag, NUL, a newline or any other control
character, so no tag can become an odd Redis key (``idx:tag:x\\ny``)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from proxy.core.tags import TAG_RULE, is_tag, thumbs_tags_replaced
from tests.conftest import RunningProxy
from tests.recording_helpers import wait_for_trace

BAD_TAGS = ["", "   ", "a\x00b", "x\ny", "tab\there", "\x7f", "é" * 129]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_the_rule_refuses_empty_control_and_long_tags(tag: str) -> None:
    """The rule itself, as every way in applies it."""
    assert not is_tag(tag)


@pytest.mark.parametrize("tag", ["a", " spaced ", "thumbs-down", "é" * 128, "prompt:v7"])
def test_the_rule_takes_ordinary_tags(tag: str) -> None:
    assert is_tag(tag)


def test_the_thumbs_tag_follows_the_vote() -> None:
    """A vote takes the other verdict's tag away; deleting the vote takes both."""
    assert thumbs_tags_replaced({"user_feedback": "negative"}, []) == ["thumbs-up"]
    assert thumbs_tags_replaced({"user_feedback": "positive"}, []) == ["thumbs-down"]
    assert thumbs_tags_replaced({}, ["user_feedback"]) == ["thumbs-down", "thumbs-up"]
    assert thumbs_tags_replaced({"user_feedback_rating": 4}, []) == []


async def _recorded(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> None:
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions",
        data=orjson.dumps(CHAT),
        headers={"X-Trace-Id": trace_id},
    ) as resp:
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, trace_id)


@pytest.mark.parametrize("tag", BAD_TAGS)
async def test_post_feedback_refuses_a_bad_tag_and_stores_nothing(
    proxy: RunningProxy, http: aiohttp.ClientSession, tag: str
) -> None:
    """400 naming the tag's place in the list; the trace keeps no vote and no tag."""
    await _recorded(http, proxy, "tag-body")
    body = {
        "trace_id": "tag-body",
        "attributes": {"user_feedback": "negative"},
        "tags": ["ok", tag],
    }
    async with http.post(f"{proxy.url}/feedback", json=body) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400
    assert error["message"] == f"tags[1]: {TAG_RULE}"
    trace = await wait_for_trace(http, proxy.admin_url, "tag-body")
    assert trace["feedback"] == []
    assert trace["tags"] == []


@pytest.mark.parametrize("tag", BAD_TAGS)
@pytest.mark.parametrize("form", ["plain", "operation"])
async def test_admin_patch_refuses_a_bad_tag_and_changes_nothing(
    proxy: RunningProxy, http: aiohttp.ClientSession, tag: str, form: str
) -> None:
    """Both PATCH body forms follow the same rule."""
    await _recorded(http, proxy, "tag-patch")
    item: object = tag if form == "plain" else {"operation": "create", "tag": tag}
    async with http.patch(f"{proxy.admin_url}/api/traces/tag-patch", json={"tags": [item]}) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400
    if form == "plain" or tag:
        assert error["message"] == f"tags[0]: {TAG_RULE}"
    else:  # an operation with an empty tag is refused by the operation's own check
        assert error["message"].startswith("tags[0].tag:")
    trace = await wait_for_trace(http, proxy.admin_url, "tag-patch")
    assert trace["tags"] == []
    assert trace["feedback"] == []


@pytest.mark.parametrize("tag", ["x\ny", "a\x00b", "   "])
async def test_the_trace_list_filter_refuses_a_bad_tag(
    proxy: RunningProxy, http: aiohttp.ClientSession, tag: str
) -> None:
    """400 invalid_parameter naming ``tag``, before Redis is asked."""
    async with http.get(f"{proxy.admin_url}/api/traces", params={"tag": tag}) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400
    assert error["param"] == "tag"
    assert error["message"] == f"tag: {TAG_RULE}"
