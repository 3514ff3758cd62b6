"""The fake provider speaks the real wire formats: the official SDKs, pointed at it, parse it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_provider import (
    ANTHROPIC_TOOL_USE_ID,
    COMPLETION_TOKENS,
    OPENAI_TOOL_CALL_ID,
    SLOW_DELAY,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    FakeProvider,
    embedding_vector,
    prompt_tokens,
    reply_pieces,
    reply_text,
    started_fake_provider,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say hello to me"}]
CLAUDE_MESSAGES: list[MessageParam] = [{"role": "user", "content": "say hello to me"}]
PROMPT_TOKENS = prompt_tokens({"messages": MESSAGES})


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with started_fake_provider() as provider:
        yield provider


@pytest.fixture
async def oai(fake: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=0)
    async with client:
        yield client


@pytest.fixture
async def claude(fake: FakeProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)
    async with client:
        yield client


@pytest.fixture
async def raw_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def _collect(stream: AsyncIterator[object], into: list[object]) -> None:
    async for item in stream:
        into.append(item)


# ----------------------------------------------------------------------------- openai


async def test_chat_json_is_parsed_by_openai_sdk(oai: openai.AsyncOpenAI) -> None:
    """A chat completion parses with the reply text, model echo and exact usage."""
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == reply_text("gpt-4o-mini")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS == 4
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS


async def test_chat_stream_with_usage_is_parsed(
    oai: openai.AsyncOpenAI, fake: FakeProvider
) -> None:
    """A streamed chat gives role, the pieces, finish_reason, then a usage-only chunk."""
    stream = await oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert texts == reply_pieces("m")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert fake.streams_finished == 1


async def test_chat_stream_without_usage_has_no_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    """Without stream_options.include_usage no chunk carries usage."""
    stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_completions_json_and_stream(oai: openai.AsyncOpenAI) -> None:
    """Legacy completions answer choices[0].text, whole or in pieces."""
    completion = await oai.completions.create(model="m", prompt="one two three")
    assert completion.choices[0].text == reply_text("m")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3
    stream = await oai.completions.create(model="m", prompt="one", stream=True)
    text = "".join([chunk.choices[0].text async for chunk in stream])
    assert text == reply_text("m")


async def test_responses_json_is_parsed(oai: openai.AsyncOpenAI) -> None:
    """A Responses API answer parses; output_text and usage are exact."""
    response = await oai.responses.create(model="m", input="hello there")
    assert response.status == "completed"
    assert response.output_text == reply_text("m")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, COMPLETION_TOKENS)
    assert response.usage.total_tokens == 2 + COMPLETION_TOKENS


async def test_responses_stream_is_parsed(oai: openai.AsyncOpenAI) -> None:
    """A streamed Responses API answer yields typed, numbered events ending in completed."""
    stream = await oai.responses.create(model="m", input="hello there", stream=True)
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == reply_pieces("m")
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == reply_text("m")


async def test_responses_stream_helper_accumulates(oai: openai.AsyncOpenAI) -> None:
    """The SDK's responses.stream() helper builds the final response from the events."""
    async with oai.responses.stream(model="m", input="hello there") as stream:
        final = await stream.get_final_response()
    assert final.output_text == reply_text("m")
    assert final.usage is not None
    assert final.usage.output_tokens == COMPLETION_TOKENS


async def test_embeddings_default_base64_decode(oai: openai.AsyncOpenAI) -> None:
    """The SDK asks for base64 by default and decodes the fake's float32 vectors exactly."""
    result = await oai.embeddings.create(model="e", input=["a b", "c"])
    assert [item.embedding for item in result.data] == [embedding_vector(0), embedding_vector(1)]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)


async def test_embeddings_float_format(oai: openai.AsyncOpenAI) -> None:
    """encoding_format=float answers plain JSON lists."""
    result = await oai.embeddings.create(model="e", input="a", encoding_format="float")
    assert result.data[0].embedding == embedding_vector(0)


async def test_chat_tool_call_json(oai: openai.AsyncOpenAI) -> None:
    """Model `tools` answers one function call with finish_reason tool_calls."""
    completion = await oai.chat.completions.create(model="tools", messages=MESSAGES)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == OPENAI_TOOL_CALL_ID
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (TOOL_NAME, TOOL_ARGUMENTS)


async def test_chat_tool_call_streamed_in_fragments(oai: openai.AsyncOpenAI) -> None:
    """Streamed tool calls send id and name first, then argument fragments to concatenate."""
    stream = await oai.chat.completions.create(model="tools", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    head = chunks[0].choices[0].delta.tool_calls
    assert head is not None
    assert head[0].id == OPENAI_TOOL_CALL_ID
    assert head[0].function is not None
    assert head[0].function.name == TOOL_NAME
    fragments = [
        call.function.arguments
        for chunk in chunks[1:]
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function and call.function.arguments
    ]
    assert len(fragments) == 5
    assert json.loads("".join(fragments)) == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_chat_tool_call_stream_helper(oai: openai.AsyncOpenAI) -> None:
    """The SDK's chat stream helper assembles the streamed tool call."""
    async with oai.chat.completions.stream(model="tools", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert json.loads(calls[0].function.arguments) == TOOL_ARGUMENTS


async def test_error_500_raises_api_status_error(oai: openai.AsyncOpenAI) -> None:
    """Model `error-500` answers 500 with an OpenAI error body; the SDK raises it."""
    with pytest.raises(openai.APIStatusError) as caught:
        await oai.chat.completions.create(model="error-500", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "The server had an error (fake)",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_error_429_raises_rate_limit_with_retry_after(oai: openai.AsyncOpenAI) -> None:
    """Model `error-429` answers 429 with retry-after: 0; the SDK raises RateLimitError."""
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(model="error-429", messages=MESSAGES, stream=True)
    assert caught.value.response.headers["retry-after"] == "0"


async def test_cut_mid_stream_makes_openai_sdk_raise(oai: openai.AsyncOpenAI) -> None:
    """Model `cut-mid-stream` sends two events then aborts; iterating the stream raises."""
    stream = await oai.chat.completions.create(
        model="cut-mid-stream", messages=MESSAGES, stream=True
    )
    received: list[object] = []
    with pytest.raises(openai.APIConnectionError):
        await _collect(stream, received)
    assert len(received) == 2


async def test_request_recorded_with_headers(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    """Every request is recorded with method, path, query, headers and body."""
    await oai.chat.completions.create(
        model="m", messages=MESSAGES, extra_query={"x": "1"}, extra_headers={"X-Custom": "yes"}
    )
    await fake.wait_for_requests(1, timeout=1)
    seen = fake.requests[0]
    assert (seen.method, seen.path, seen.query_string) == ("POST", "/v1/chat/completions", "x=1")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["x-custom"] == "yes"
    assert seen.json["messages"] == MESSAGES


async def test_unknown_path_is_404_openai_error(oai: openai.AsyncOpenAI) -> None:
    """Any other path answers 404 with an OpenAI error body."""
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.post("/nope", cast_to=object, body={})
    assert caught.value.body == {
        "message": "Invalid URL (POST /v1/nope)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_models_list(oai: openai.AsyncOpenAI) -> None:
    """GET /v1/models lists a few models."""
    models = [model.id async for model in oai.models.list()]
    assert "gpt-4o-mini" in models


# ----------------------------------------------------------------------------- anthropic


async def test_messages_json_is_parsed_by_anthropic_sdk(
    claude: anthropic.AsyncAnthropic, fake: FakeProvider
) -> None:
    """A message parses with its text block, end_turn and exact usage; the credential arrives."""
    message = await claude.messages.create(
        model="claude-x", max_tokens=50, system="be brief", messages=CLAUDE_MESSAGES
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == reply_text("claude-x")
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, COMPLETION_TOKENS)
    # anthropic 2.x sends the api_key as `Authorization: Bearer`, not `x-api-key`.
    assert fake.requests[0].headers["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in fake.requests[0].headers


async def test_messages_stream_final_message(claude: anthropic.AsyncAnthropic) -> None:
    """The SDK stream helper accumulates text and takes usage from message_delta."""
    async with claude.messages.stream(model="c", max_tokens=50, messages=CLAUDE_MESSAGES) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == reply_pieces("c")
    assert final.content[0].type == "text"
    assert final.content[0].text == reply_text("c")
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT_TOKENS, 5)


async def test_messages_tool_use_streamed(claude: anthropic.AsyncAnthropic) -> None:
    """Model `tools` streams a tool_use block whose input arrives as input_json_delta fragments."""
    async with claude.messages.stream(
        model="tools", max_tokens=50, messages=CLAUDE_MESSAGES
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (ANTHROPIC_TOOL_USE_ID, TOOL_NAME, TOOL_ARGUMENTS)
    assert final.stop_reason == "tool_use"


async def test_messages_error_has_anthropic_shape(claude: anthropic.AsyncAnthropic) -> None:
    """Model `error-500` on /v1/messages answers the Anthropic error shape."""
    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude.messages.create(model="error-500", max_tokens=5, messages=CLAUDE_MESSAGES)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "The server had an error (fake)"},
    }


async def test_cut_mid_stream_makes_anthropic_sdk_raise(claude: anthropic.AsyncAnthropic) -> None:
    """A stream aborted mid-way raises in the Anthropic SDK too (untranslated httpx2 error)."""
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        async with claude.messages.stream(
            model="cut-mid-stream", max_tokens=5, messages=CLAUDE_MESSAGES
        ) as stream:
            await stream.get_final_message()


# ----------------------------------------------------------------------------- misbehaviour


async def test_gzip_answer_is_compressed(
    fake: FakeProvider, raw_http: aiohttp.ClientSession
) -> None:
    """Model `gzip` compresses the JSON answer when Accept-Encoding allows gzip."""
    url = fake.base_url + "/v1/chat/completions"
    body = {"model": "gzip", "messages": MESSAGES}
    async with raw_http.post(url, json=body, headers={"Accept-Encoding": "gzip"}) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    async with raw_http.post(url, json=body, headers={"Accept-Encoding": "identity"}) as resp:
        assert "Content-Encoding" not in resp.headers
        assert (await resp.json())["choices"][0]["message"]["content"] == reply_text("gzip")


async def test_gzip_is_decoded_by_openai_sdk(oai: openai.AsyncOpenAI) -> None:
    """The SDK decodes gzip JSON and a gzip stream flushed per event."""
    completion = await oai.chat.completions.create(model="gzip", messages=MESSAGES)
    assert completion.choices[0].message.content == reply_text("gzip")
    stream = await oai.chat.completions.create(model="gzip", messages=MESSAGES, stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices[0].delta.content]
    assert pieces == reply_pieces("gzip")


async def test_echo_headers(fake: FakeProvider, raw_http: aiohttp.ClientSession) -> None:
    """Model `echo-headers` returns the received headers, lower-cased, in `echo_headers`."""
    body = {"model": "echo-headers", "messages": MESSAGES}
    url = fake.base_url + "/v1/chat/completions"
    async with raw_http.post(url, json=body, headers={"X-Trace-Id": "abc"}) as resp:
        echoed = (await resp.json())["echo_headers"]
    assert echoed["x-trace-id"] == "abc"


async def test_slow_stream_spaces_events(
    fake: FakeProvider, raw_http: aiohttp.ClientSession
) -> None:
    """Model `slow` sends the first event at once and the rest 150 ms apart."""
    body = {"model": "slow", "messages": MESSAGES, "stream": True}
    started = time.monotonic()
    async with raw_http.post(fake.base_url + "/v1/chat/completions", json=body) as resp:
        first = await resp.content.readuntil(b"\n\n")
        first_at = time.monotonic() - started
        await resp.read()
        total = time.monotonic() - started
    assert first.startswith(b"data: {")
    assert first_at < SLOW_DELAY
    assert total >= SLOW_DELAY * 7  # eight events: role, five pieces, finish, [DONE]


async def test_big_reply(oai: openai.AsyncOpenAI) -> None:
    """Model `big` answers about 300 KB of text."""
    completion = await oai.chat.completions.create(model="big", messages=MESSAGES)
    assert completion.choices[0].message.content == reply_text("big")
    assert len(reply_text("big")) >= 300_000 - 1


async def test_hang_mid_stream_records_client_disconnect(
    fake: FakeProvider, raw_http: aiohttp.ClientSession
) -> None:
    """A client leaving a `hang-mid-stream` stream is recorded as a disconnect."""
    body = {"model": "hang-mid-stream", "messages": MESSAGES, "stream": True}
    resp = await raw_http.post(fake.base_url + "/v1/chat/completions", json=body)
    await resp.content.readuntil(b"\n\n")
    left = time.monotonic()
    resp.close()
    at = await fake.wait_for_disconnect(timeout=2)
    assert at >= left
    assert fake.streams_finished == 0


async def test_slow_stream_records_client_leaving_mid_stream(
    fake: FakeProvider, raw_http: aiohttp.ClientSession
) -> None:
    """A client closing a `slow` stream after the first event is a disconnect, not a finish."""
    body = {"model": "slow", "messages": MESSAGES, "stream": True}
    resp = await raw_http.post(fake.base_url + "/v1/chat/completions", json=body)
    await resp.content.readuntil(b"\n\n")
    resp.close()
    await fake.wait_for_disconnect(timeout=2)
    assert fake.streams_finished == 0
    assert len(fake.disconnects) == 1


async def test_hang_records_client_disconnect(
    fake: FakeProvider, raw_http: aiohttp.ClientSession
) -> None:
    """A client giving up on `hang` (no headers yet) is recorded as a disconnect."""
    url = fake.base_url + "/v1/chat/completions"
    with pytest.raises(asyncio.TimeoutError):
        await raw_http.post(url, json={"model": "hang"}, timeout=aiohttp.ClientTimeout(total=0.2))
    await fake.wait_for_disconnect(timeout=2)


async def test_hang_sends_nothing_until_stopped() -> None:
    """Model `hang` never answers; stop() ends it without recording a disconnect."""
    async with started_fake_provider() as fake, aiohttp.ClientSession() as session:
        url = fake.base_url + "/v1/messages"
        post = asyncio.ensure_future(session.post(url, json={"model": "hang"}))
        await fake.wait_for_requests(1, timeout=2)
        assert not post.done()
        await fake.stop()
        with pytest.raises(aiohttp.ClientError):
            await post
        assert fake.disconnects == []


async def test_wait_for_disconnect_times_out(fake: FakeProvider) -> None:
    """wait_for_disconnect raises TimeoutError when nobody leaves."""
    with pytest.raises(TimeoutError):
        await fake.wait_for_disconnect(timeout=0.05)
