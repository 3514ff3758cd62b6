"""Recording: every call through the proxy becomes a span of its trace in Redis."""

from __future__ import annotations

import re

import aiohttp
import anthropic
import orjson
import pytest
import redis.asyncio as aioredis
from openai.types.chat import ChatCompletionMessageParam

from tests.clients import oai
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import (
    COMPLETION_TOKENS,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    prompt_tokens,
    reply_text,
)
from tests.recording_helpers import wait_for_trace

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say hello to me"}]
PROMPT_TOKENS = prompt_tokens({"messages": MESSAGES})
MODEL = "gpt-4o-mini"


async def test_json_chat_call_is_recorded_with_usage_and_content(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A JSON chat completion leaves a span with model, exact usage, input and output."""
    async with oai(proxy, "rec-json", **{"X-Session-Id": "s-1", "X-User-Id": "u-1"}) as client:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    trace = await wait_for_trace(http, proxy.admin_url, "rec-json")
    assert trace["session_id"] == "s-1"
    assert trace["user_id"] == "u-1"
    span = trace["spans"][0]
    assert span["upstream"] == "openai"
    assert span["method"] == "POST"
    assert span["path"] == "/v1/chat/completions"
    assert span["status"] == 200
    assert span["stream"] is False
    assert span["model"] == MODEL
    assert span["finish_reason"] == "stop"
    assert span["usage"] == {
        "input_tokens": PROMPT_TOKENS,
        "output_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
    }
    assert span["raw_usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert span["input"]["messages"] == MESSAGES
    assert span["output"]["text"] == reply_text(MODEL)
    assert span["duration_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", span["started_at"])
    assert span["error"] is None


async def test_streamed_call_with_include_usage_records_usage_and_ttft(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A streamed chat completion records the whole text, usage from the final chunk, and TTFT."""
    async with oai(proxy, "rec-stream") as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
    span = (await wait_for_trace(http, proxy.admin_url, "rec-stream"))["spans"][0]
    assert span["stream"] is True
    assert span["output"]["text"] == reply_text(MODEL)
    assert span["usage"]["output_tokens"] == COMPLETION_TOKENS
    assert span["usage"]["input_tokens"] == PROMPT_TOKENS
    assert 0 < span["ttft_ms"] <= span["duration_ms"]


async def test_stream_without_include_usage_records_null_usage(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """When the provider never sent usage, the span says null, never zero."""
    async with oai(proxy, "rec-nousage") as client:
        async for _ in await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ):
            pass
    span = (await wait_for_trace(http, proxy.admin_url, "rec-nousage"))["spans"][0]
    assert span["usage"] is None
    assert span["output"]["text"] == reply_text(MODEL)


async def test_streamed_tool_call_is_recorded(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Tool-call fragments are joined into the recorded tool call."""
    async with oai(proxy, "rec-tools") as client:
        async for _ in await client.chat.completions.create(
            model="tools", messages=MESSAGES, stream=True
        ):
            pass
    span = (await wait_for_trace(http, proxy.admin_url, "rec-tools"))["spans"][0]
    (call,) = span["output"]["tool_calls"]
    assert call["function"]["name"] == TOOL_NAME
    assert orjson.loads(call["function"]["arguments"]) == TOOL_ARGUMENTS


async def test_anthropic_stream_usage_input_from_start_output_from_delta(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Anthropic spans take input tokens from message_start and output from message_delta."""
    client = anthropic.AsyncAnthropic(
        base_url=proxy.url + "/anthropic",
        api_key="sk-ant-secret",
        max_retries=0,
        default_headers={"X-Trace-Id": "rec-claude"},
    )
    async with (
        client,
        client.messages.stream(
            model="claude-3-5-haiku-latest",
            max_tokens=64,
            messages=[{"role": "user", "content": "say hello to me"}],
        ) as stream,
    ):
        await stream.get_final_message()
    span = (await wait_for_trace(http, proxy.admin_url, "rec-claude"))["spans"][0]
    assert span["upstream"] == "anthropic"
    assert span["path"] == "/v1/messages"
    assert span["usage"]["input_tokens"] == PROMPT_TOKENS
    assert span["usage"]["output_tokens"] == COMPLETION_TOKENS
    assert span["finish_reason"] == "end_turn"
    assert span["output"]["text"] == reply_text("claude-3-5-haiku-latest")


async def test_gzip_answer_is_recorded_from_the_inflated_body(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A compressed answer reaches the client compressed and is parsed for the record."""
    async with oai(proxy, "rec-gzip") as client:
        completion = await client.chat.completions.create(model="gzip", messages=MESSAGES)
    assert completion.choices[0].message.content == reply_text("gzip")
    span = (await wait_for_trace(http, proxy.admin_url, "rec-gzip"))["spans"][0]
    assert span["output"]["text"] == reply_text("gzip")
    assert span["usage"]["output_tokens"] == COMPLETION_TOKENS


async def test_spans_of_one_trace_are_recorded_together(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Several calls with one X-Trace-Id become several spans of one trace, in order."""
    async with oai(proxy, "rec-multi", **{"X-Trace-Tags": "a,b"}) as client:
        for _ in range(3):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        await client.embeddings.create(model="text-embedding-3-small", input="hi")
    trace = await wait_for_trace(http, proxy.admin_url, "rec-multi", spans=4)
    assert trace["span_count"] == 4
    assert [s["path"] for s in trace["spans"]][-1] == "/v1/embeddings"
    assert trace["tags"] == ["a", "b"]
    assert set(trace["models"]) == {MODEL, "text-embedding-3-small"}
    starts = [s["started_at"] for s in trace["spans"]]
    assert starts == sorted(starts)


async def test_capture_is_cut_at_max_bytes_but_usage_still_parsed(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """A long answer is stored up to capture.max_bytes, flagged, with usage read to the end."""
    proxy = await start(**{"capture.max_bytes": 1000})
    async with oai(proxy, "rec-big") as client:
        async for _ in await client.chat.completions.create(
            model="big", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass
    span = (await wait_for_trace(http, proxy.admin_url, "rec-big"))["spans"][0]
    assert span["output_truncated"] is True
    assert len(span["output"]["text"].encode()) <= 1000
    assert span["usage"]["output_tokens"] == COMPLETION_TOKENS


async def test_capture_off_stores_no_content_but_usage(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """With capture.bodies = false, spans have model and usage but no input or output."""
    proxy = await start(**{"capture.bodies": False})
    async with oai(proxy, "rec-off") as client:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    span = (await wait_for_trace(http, proxy.admin_url, "rec-off"))["spans"][0]
    assert span["input"] is None
    assert span["output"] is None
    assert span["usage"]["input_tokens"] == PROMPT_TOKENS


async def test_client_disconnect_mid_stream_still_leaves_a_span(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A client that leaves mid-stream leaves a span with what arrived and the reason."""
    body = orjson.dumps({"model": "hang-mid-stream", "messages": MESSAGES, "stream": True})
    resp = await http.post(f"{proxy.url}/v1/chat/completions", data=body,
                           headers={"X-Trace-Id": "rec-gone"})  # fmt: skip
    await resp.content.readany()
    resp.close()
    span = (await wait_for_trace(http, proxy.admin_url, "rec-gone"))["spans"][0]
    assert span["error"] == "client_disconnected"
    assert span["status"] == 200
    assert span["response_bytes"] > 0  # what arrived before the client left is accounted for


async def test_upstream_cut_mid_stream_leaves_a_span_with_the_error(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """An upstream that breaks mid-stream leaves a span saying so."""
    body = orjson.dumps({"model": "cut-mid-stream", "messages": MESSAGES, "stream": True})
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{proxy.url}/v1/chat/completions", data=body,
                             headers={"X-Trace-Id": "rec-cut"}) as resp:  # fmt: skip
            await resp.read()
    span = (await wait_for_trace(http, proxy.admin_url, "rec-cut"))["spans"][0]
    assert span["error"] == "upstream_broken"


async def test_upstream_down_leaves_a_span_with_502(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """A call that never reached the provider is recorded with the proxy's status and error."""
    from proxy.store.embedded import free_port

    proxy = await start(**{"upstreams.openai.base_url": f"http://127.0.0.1:{free_port()}"})
    async with http.post(f"{proxy.url}/v1/chat/completions", data=b"{}",
                         headers={"X-Trace-Id": "rec-down"}) as resp:  # fmt: skip
        assert resp.status == 502
    span = (await wait_for_trace(http, proxy.admin_url, "rec-down"))["spans"][0]
    assert span["status"] == 502
    assert span["error"] == "upstream_unreachable"


async def test_no_credential_reaches_redis(
    proxy: RunningProxy,
    http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    """Provider keys and the proxy key appear in no Redis key or value."""
    secrets = ["sk-secret-openai-key", "sk-ant-secret-2", "az-secret-3"]
    headers = {"x-api-key": secrets[1], "api-key": secrets[2]}
    async with oai(proxy, "rec-creds", **headers) as client:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        async for _ in await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ):
            pass
    await wait_for_trace(http, proxy.admin_url, "rec-creds", spans=2)
    dump = b""
    async for key in redis_client.scan_iter(match=f"{key_prefix}*"):
        dump += key + await redis_client.dump(key) or b""
        kind = await redis_client.type(key)
        if kind == b"hash":
            dump += b"".join(k + v for k, v in (await redis_client.hgetall(key)).items())
        elif kind == b"stream":
            dump += repr(await redis_client.xrange(key)).encode()
    assert dump
    for secret in secrets:
        assert secret.encode() not in dump


async def test_span_is_appended_to_the_event_stream(
    proxy: RunningProxy,
    http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    """Every finished span is also an entry of the capped events stream."""
    async with oai(proxy, "rec-events") as client:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    trace = await wait_for_trace(http, proxy.admin_url, "rec-events")
    entries = await redis_client.xrange(f"{key_prefix}:events")
    (fields,) = [f for _, f in entries if f[b"trace_id"] == b"rec-events"]
    assert fields[b"type"] == b"span"
    assert fields[b"span_id"].decode() == trace["spans"][0]["span_id"]
    assert orjson.loads(fields[b"data"])["model"] == MODEL


async def test_unknown_trace_is_404_and_bad_id_is_400(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """The admin API answers 404 for a trace it does not have and 400 for a malformed ID."""
    async with http.get(f"{proxy.admin_url}/api/traces/never-seen") as resp:
        assert resp.status == 404
    async with http.get(f"{proxy.admin_url}/api/traces/bad%20id") as resp:
        assert resp.status == 400
