"""End to end: the official SDKs, pointed at the proxy, get exactly what the provider sends."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import RunningProxy
from tests.fake_provider import (
    COMPLETION_TOKENS,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    FakeProvider,
    embedding_vector,
    prompt_tokens,
    reply_text,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say hello to me"}]
CLAUDE_MESSAGES: list[MessageParam] = [{"role": "user", "content": "say hello to me"}]
PROMPT_TOKENS = prompt_tokens({"messages": MESSAGES})
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(params=["/openai/v1", "/v1"])
async def oai(
    request: pytest.FixtureRequest, proxy: RunningProxy
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK through the proxy, by upstream prefix and by the default route."""
    client = openai.AsyncOpenAI(
        base_url=proxy.url + request.param, api_key="sk-test-key", max_retries=0
    )
    async with client:
        yield client


@pytest.fixture
async def claude(proxy: RunningProxy) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The anthropic SDK through the proxy."""
    client = anthropic.AsyncAnthropic(
        base_url=proxy.url + "/anthropic", api_key="sk-ant-key", max_retries=0
    )
    async with client:
        yield client


async def test_openai_chat_json(oai: openai.AsyncOpenAI, fake_provider: FakeProvider) -> None:
    """A chat completion arrives as the provider sent it, with trace headers, key passed on."""
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == reply_text("gpt-4o-mini")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert HEX32.match(raw.headers["x-trace-id"])
    assert raw.headers["x-span-id"]
    assert fake_provider.requests[-1].headers["Authorization"] == "Bearer sk-test-key"


async def test_openai_chat_stream_with_usage(oai: openai.AsyncOpenAI) -> None:
    """A streamed chat completion yields every delta and the final usage chunk."""
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text == reply_text("gpt-4o-mini")
    assert usage is not None
    assert usage.completion_tokens == COMPLETION_TOKENS


async def test_openai_streamed_tool_call(oai: openai.AsyncOpenAI) -> None:
    """Tool-call fragments reach the SDK intact."""
    stream = await oai.chat.completions.create(model="tools", messages=MESSAGES, stream=True)
    name, arguments = "", ""
    async for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (call.function and call.function.name) or ""
            arguments += (call.function and call.function.arguments) or ""
    assert name == TOOL_NAME
    assert json.loads(arguments) == TOOL_ARGUMENTS


async def test_openai_completions_responses_and_embeddings(oai: openai.AsyncOpenAI) -> None:
    """The legacy completions, Responses API and embeddings endpoints all pass through."""
    completion = await oai.completions.create(model="gpt-4o-mini", prompt="say hello")
    assert completion.choices[0].text == reply_text("gpt-4o-mini")
    response = await oai.responses.create(model="gpt-4o-mini", input="say hello")
    assert response.output_text == reply_text("gpt-4o-mini")
    events = [e.type async for e in await oai.responses.create(
        model="gpt-4o-mini", input="say hello", stream=True)]  # fmt: skip
    assert events[-1] == "response.completed"
    embeddings = await oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [e.embedding for e in embeddings.data] == [embedding_vector(0), embedding_vector(1)]


async def test_openai_error_status_reaches_the_sdk(oai: openai.AsyncOpenAI) -> None:
    """A provider error is raised by the SDK with the provider's status."""
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="error-500", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.response.headers["x-trace-id"]


async def test_openai_sdk_sees_a_cut_stream_as_an_error(oai: openai.AsyncOpenAI) -> None:
    """A stream the provider broke off raises in the SDK instead of ending cleanly."""
    stream = await oai.chat.completions.create(
        model="cut-mid-stream", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass


async def test_anthropic_messages_json(
    claude: anthropic.AsyncAnthropic, fake_provider: FakeProvider
) -> None:
    """A Messages API answer arrives intact, and the key reaches the provider."""
    raw = await claude.messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=64, messages=CLAUDE_MESSAGES
    )
    message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == reply_text("claude-3-5-haiku-latest")
    assert message.usage.output_tokens == COMPLETION_TOKENS
    assert raw.headers["x-trace-id"]
    sent = fake_provider.requests[-1].headers
    assert "sk-ant-key" in (sent.get("Authorization", "") + sent.get("x-api-key", ""))
    assert sent["anthropic-version"]


async def test_anthropic_messages_stream(claude: anthropic.AsyncAnthropic) -> None:
    """A streamed Messages answer yields the text and the final usage."""
    async with claude.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=64, messages=CLAUDE_MESSAGES
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == reply_text("claude-3-5-haiku-latest")
    assert final.usage.output_tokens == COMPLETION_TOKENS
    assert final.usage.input_tokens == PROMPT_TOKENS


async def test_custom_trace_id_is_echoed_to_the_sdk(proxy: RunningProxy) -> None:
    """A trace ID set as a default header comes back on every response."""
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/v1",
        api_key="sk-test-key",
        max_retries=0,
        default_headers={"X-Trace-Id": "conv-42"},
    )
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert raw.headers["x-trace-id"] == "conv-42"
