"""Provider endpoint parsers and the registry: what a record keeps of each call."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.recording.providers import (
    anthropic_messages,
    openai_chat,
    openai_completions,
    openai_embeddings,
    openai_responses,
)
from proxy.recording.providers.base import EndpointParser, ParsedResponse, Usage
from proxy.recording.providers.registry import parser_for
from proxy.recording.sse import SSEDecoder, SSEEvent

TRANSCRIPTS = Path(__file__).parent / "transcripts"
CHAT = openai_chat.PARSER
COMPLETIONS = openai_completions.PARSER
RESPONSES = openai_responses.PARSER
EMBEDDINGS = openai_embeddings.PARSER
MESSAGES = anthropic_messages.PARSER
ALL_PARSERS = [CHAT, COMPLETIONS, RESPONSES, EMBEDDINGS, MESSAGES]
BIG = 1 << 20


def events_of(stream: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(stream) + decoder.flush()


def transcript_events(name: str) -> list[SSEEvent]:
    return events_of((TRANSCRIPTS / name).read_bytes())


def sse(*payloads: Any, named: bool = False) -> list[SSEEvent]:
    """Events as a provider would send them: JSON payloads, optionally named by their type."""
    events = []
    for payload in payloads:
        data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        name = payload["type"] if named and isinstance(payload, dict) else "message"
        events.append(SSEEvent(event=name, data=data))
    return events


def parse_events(
    parser: EndpointParser, events: list[SSEEvent], max_text_bytes: int = BIG
) -> ParsedResponse:
    response_parser = parser.response_parser(max_text_bytes)
    for event in events:
        response_parser.feed_event(event)
    return response_parser.result()


def parse_json(parser: EndpointParser, body: Any, max_text_bytes: int = BIG) -> ParsedResponse:
    response_parser = parser.response_parser(max_text_bytes)
    response_parser.feed_json(body if isinstance(body, bytes) else orjson.dumps(body))
    return response_parser.result()


def request(parser: EndpointParser, body: dict[str, Any]) -> Any:
    return parser.parse_request(orjson.dumps(body))


# --- realistic JSON bodies ------------------------------------------------------------------

CHAT_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_3f58d112f7",
}

CHAT_TOOL_CALLS = [
    {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "get_current_weather", "arguments": '{\n"location": "Boston, MA"\n}'},
    }
]

CHAT_TOOL_RESPONSE: dict[str, Any] = {
    **CHAT_RESPONSE,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": CHAT_TOOL_CALLS,
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}

COMPLETIONS_RESPONSE: dict[str, Any] = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": None,
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}

RESPONSES_USAGE = {
    "input_tokens": 36,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 87,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 123,
}

RESPONSES_FUNCTION_CALL = {
    "id": "fc_12345xyz",
    "call_id": "call_12345xyz",
    "type": "function_call",
    "name": "get_weather",
    "arguments": '{"location":"Paris, France"}',
    "status": "completed",
}

RESPONSES_RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "In a peaceful grove beneath a silver moon...",
                    "annotations": [],
                }
            ],
        },
        RESPONSES_FUNCTION_CALL,
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": RESPONSES_USAGE,
    "user": None,
    "metadata": {},
}

EMBEDDINGS_RESPONSE: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "object": "embedding",
            "index": 0,
            "embedding": [0.0023064255, -0.009327292, -0.0028842222],
        },
        {"object": "embedding", "index": 1, "embedding": [0.0123, 0.0456, -0.0789]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}

MESSAGES_USAGE = {
    "input_tokens": 2095,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 1024,
    "output_tokens": 503,
    "service_tier": "standard",
}

MESSAGES_RESPONSE: dict[str, Any] = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "I'll check the weather. "},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": MESSAGES_USAGE,
}

ANTHROPIC_ERROR = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
}

OPENAI_ERROR = {
    "error": {
        "message": "The model `gpt-5-turbo` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
}


# --- registry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/completions", COMPLETIONS),
        ("/v1/responses", RESPONSES),
        ("/v1/embeddings", EMBEDDINGS),
        ("/v1/messages", MESSAGES),
        ("/openai/deployments/gpt-4o/chat/completions", CHAT),
        ("/openai/deployments/ada/embeddings", EMBEDDINGS),
        ("/api/openai/v1/chat/completions/", CHAT),
        ("chat/completions", CHAT),
        ("/v1/openai/responses", RESPONSES),
    ],
)
def test_registry_routes_post_by_path_ending(path: str, expected: EndpointParser) -> None:
    """A POST is routed by the path's ending segments, whatever prefix the upstream uses."""
    assert parser_for("POST", path) is expected


def test_registry_tells_chat_completions_from_completions() -> None:
    """``/v1/chat/completions`` is chat and ``/v1/completions`` is legacy completions."""
    assert parser_for("POST", "/v1/chat/completions") is CHAT
    assert parser_for("POST", "/v1/completions") is COMPLETIONS


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "HEAD"])
def test_registry_ignores_other_methods(method: str) -> None:
    """Only POST is parsed: any other method gets no parser."""
    assert parser_for(method, "/v1/chat/completions") is None


def test_registry_method_is_case_insensitive() -> None:
    """The method matches whatever its case."""
    assert parser_for("post", "/v1/messages") is MESSAGES


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/v1/models",
        "/v1/chat/completions/chatcmpl-123",
        "/v1/responses/resp_123/cancel",
        "/v1/messages/count_tokens",
        "/v1/messages/batches",
        "/v1/threads/thread_abc/messages",
        "/v1/audio/speech",
        "/v1/mycompletions",
        "/v1/xmessages",
    ],
)
def test_registry_unknown_paths_get_none(path: str) -> None:
    """Paths that are not one of the parsed endpoints get no parser."""
    assert parser_for("POST", path) is None


def test_every_parser_has_a_distinct_name() -> None:
    """Each endpoint parser names itself, and the names are distinct."""
    names = [parser.name for parser in ALL_PARSERS]
    assert len(set(names)) == len(names)


def test_parsers_are_pure() -> None:
    """Importing the parsers and the SSE decoder imports neither aiohttp nor redis."""
    code = (
        "import sys, proxy.recording.sse, proxy.recording.providers.registry\n"
        "assert not {'aiohttp', 'redis'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- requests -------------------------------------------------------------------------------


def test_chat_request_keeps_model_stream_messages_and_tools() -> None:
    """A chat request yields its model, stream flag, messages and tools."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Boston?"}]},
    ]
    tools = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {}}}]
    parsed = request(
        CHAT,
        {
            "model": "gpt-4o-mini",
            "messages": messages,
            "tools": tools,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
        },
    )
    assert parsed.model == "gpt-4o-mini"
    assert parsed.stream is True
    assert parsed.input == {"messages": messages, "tools": tools}


def test_chat_request_without_tools_or_stream() -> None:
    """Without ``tools`` the input is only the messages, and ``stream`` defaults to false."""
    parsed = request(CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert parsed.stream is False
    assert parsed.input == {"messages": [{"role": "user", "content": "hi"}]}


def test_request_stream_must_be_true_itself() -> None:
    """Only a JSON ``true`` means streaming; a string or number does not."""
    assert request(CHAT, {"model": "m", "messages": [], "stream": "true"}).stream is False
    assert request(CHAT, {"model": "m", "messages": [], "stream": 1}).stream is False


def test_completions_request_keeps_prompt() -> None:
    """A completions request's input is its prompt."""
    parsed = request(COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this"})
    assert (parsed.model, parsed.stream, parsed.input) == (
        "gpt-3.5-turbo-instruct",
        False,
        {"prompt": "Say this"},
    )


def test_responses_request_keeps_input_and_instructions() -> None:
    """A Responses request's input is its ``input`` and ``instructions``."""
    body = {
        "model": "gpt-4.1",
        "instructions": "Talk like a pirate.",
        "input": [{"role": "user", "content": "Are semicolons optional in JavaScript?"}],
        "stream": True,
    }
    parsed = request(RESPONSES, body)
    assert parsed.model == "gpt-4.1"
    assert parsed.stream is True
    assert parsed.input == {"input": body["input"], "instructions": "Talk like a pirate."}


def test_embeddings_request_keeps_input() -> None:
    """An embeddings request's input is its ``input``, and it never streams."""
    parsed = request(EMBEDDINGS, {"model": "text-embedding-3-small", "input": ["a", "b"]})
    assert (parsed.model, parsed.stream, parsed.input) == (
        "text-embedding-3-small",
        False,
        {"input": ["a", "b"]},
    )


def test_messages_request_keeps_messages_system_and_tools() -> None:
    """An Anthropic request's input is its messages, system prompt and tools."""
    system = [
        {"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}
    ]
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
    messages = [{"role": "user", "content": "Weather in SF?"}]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": system,
        "tools": tools,
        "messages": messages,
        "stream": True,
    }
    parsed = request(MESSAGES, body)
    assert parsed.model == "claude-sonnet-4-5"
    assert parsed.stream is True
    assert parsed.input == {"messages": messages, "system": system, "tools": tools}


@pytest.mark.parametrize("parser", ALL_PARSERS, ids=lambda p: p.name)
@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'"s"', b"null", b'{"model": 3}'])
def test_malformed_request_gives_empty_fields(parser: EndpointParser, body: bytes) -> None:
    """A request body that is not a usable JSON object yields no model and no input."""
    parsed = parser.parse_request(body)
    assert parsed.model is None
    assert parsed.stream is False


# --- OpenAI chat ----------------------------------------------------------------------------


def test_chat_json_response() -> None:
    """A chat JSON response yields model, finish reason, text and the usage as reported."""
    parsed = parse_json(CHAT, CHAT_RESPONSE)
    assert parsed.model == "gpt-4.1-2025-04-14"
    assert parsed.finish_reason == "stop"
    assert parsed.text == "Hello! How can I assist you today?"
    assert parsed.tool_calls == []
    assert parsed.usage == Usage(
        input_tokens=19, output_tokens=10, total_tokens=29, cache_read_tokens=0
    )
    assert parsed.raw_usage == CHAT_RESPONSE["usage"]
    assert parsed.text_truncated is False
    assert parsed.error is None


def test_chat_json_tool_calls_are_kept_as_sent() -> None:
    """Tool calls in a chat JSON response are kept as sent, and null content is no text."""
    parsed = parse_json(CHAT, CHAT_TOOL_RESPONSE)
    assert parsed.tool_calls == CHAT_TOOL_CALLS
    assert parsed.text is None
    assert parsed.finish_reason == "tool_calls"


def test_chat_json_content_parts_are_joined() -> None:
    """Content given as a list of parts yields the text parts joined."""
    body = copy.deepcopy(CHAT_RESPONSE)
    body["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "Hello, "},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
        {"type": "text", "text": "world"},
    ]
    assert parse_json(CHAT, body).text == "Hello, world"


def test_chat_json_only_choice_zero_is_read() -> None:
    """With n > 1, the text and finish reason come from choice index 0."""
    body = copy.deepcopy(CHAT_RESPONSE)
    other = copy.deepcopy(body["choices"][0])
    other.update(index=1, finish_reason="length")
    other["message"]["content"] = "other"
    body["choices"].insert(0, other)
    parsed = parse_json(CHAT, body)
    assert (parsed.text, parsed.finish_reason) == ("Hello! How can I assist you today?", "stop")


def test_chat_json_error_body() -> None:
    """An OpenAI error body yields the error type and message."""
    parsed = parse_json(CHAT, OPENAI_ERROR)
    assert parsed.error == (
        "invalid_request_error: The model `gpt-5-turbo` does not exist "
        "or you do not have access to it."
    )
    assert parsed.usage is None


def test_chat_stream_with_include_usage() -> None:
    """A chat stream with include_usage yields the text, finish reason and final usage."""
    parsed = parse_events(CHAT, transcript_events("openai_chat_include_usage.sse"))
    assert parsed.model == "gpt-4o-mini-2024-07-18"
    assert parsed.text == "Bonjour à vous ☕ — ça va ?"
    assert parsed.finish_reason == "stop"
    assert parsed.usage == Usage(
        input_tokens=19, output_tokens=6, total_tokens=25, cache_read_tokens=0
    )
    assert parsed.raw_usage is not None
    assert parsed.raw_usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert parsed.tool_calls == []
    assert parsed.error is None


def test_chat_stream_without_include_usage_has_no_usage() -> None:
    """A chat stream without include_usage leaves usage None, never zero."""
    events = [
        e
        for e in transcript_events("openai_chat_include_usage.sse")
        if '"choices":[]' not in e.data
    ]
    parsed = parse_events(CHAT, events)
    assert parsed.usage is None
    assert parsed.raw_usage is None
    assert parsed.text == "Bonjour à vous ☕ — ça va ?"


def test_chat_stream_tool_call_fragments_are_merged() -> None:
    """Tool-call fragments merge by index: arguments joined, id/name/type from the first."""
    parsed = parse_events(CHAT, transcript_events("openai_chat_tool_calls.sse"))
    assert parsed.model == "gpt-4o-2024-08-06"
    assert parsed.finish_reason == "tool_calls"
    assert parsed.text is None
    assert parsed.usage is None
    assert parsed.tool_calls == [
        {
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'},
        },
        {
            "id": "call_Q3mVt7p2Xk9LwY1aZc5bN8rE",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
        },
    ]


def test_chat_stream_and_json_tool_calls_have_the_same_shape() -> None:
    """A tool call reads the same whether it was streamed or returned as JSON."""
    streamed = parse_events(
        CHAT,
        sse(
            {
                "model": "gpt-4.1",
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, **CHAT_TOOL_CALLS[0]}]}}
                ],
            }
        ),
    )
    assert streamed.tool_calls == CHAT_TOOL_CALLS


def test_chat_stream_error_chunk() -> None:
    """An ``error`` object inside a chat stream sets the error."""
    events = sse(
        {"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"error": {"message": "The server had an error", "type": "server_error", "code": None}},
    )
    parsed = parse_events(CHAT, events)
    assert parsed.error == "server_error: The server had an error"
    assert parsed.text == "Hi"


def test_chat_stream_error_event() -> None:
    """A named ``error`` event sets the error."""
    parsed = parse_events(CHAT, [SSEEvent(event="error", data='{"message":"boom"}')])
    assert parsed.error == "boom"


def test_chat_stream_azure_empty_first_chunk_does_not_blank_the_model() -> None:
    """Azure's leading content-filter chunk with an empty model does not hide the real model."""
    events = sse(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [],
        },
        {"model": "gpt-4o-2024-05-13", "choices": [{"index": 0, "delta": {"content": "ok"}}]},
    )
    assert parse_events(CHAT, events).model == "gpt-4o-2024-05-13"


def test_chat_stream_done_marker_is_ignored() -> None:
    """``data: [DONE]`` changes nothing."""
    assert parse_events(CHAT, [SSEEvent(data="[DONE]")]) == ParsedResponse()


# --- OpenAI completions ---------------------------------------------------------------------


def test_completions_json_response() -> None:
    """A completions JSON response yields model, text, finish reason and usage."""
    parsed = parse_json(COMPLETIONS, COMPLETIONS_RESPONSE)
    assert parsed.model == "gpt-3.5-turbo-instruct"
    assert parsed.text == "\n\nThis is indeed a test"
    assert parsed.finish_reason == "length"
    assert parsed.usage == Usage(input_tokens=5, output_tokens=7, total_tokens=12)
    assert parsed.raw_usage == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_completions_stream_with_include_usage() -> None:
    """A completions stream yields the joined text and the final usage chunk."""
    parsed = parse_events(COMPLETIONS, transcript_events("openai_completions_include_usage.sse"))
    assert parsed.model == "gpt-3.5-turbo-instruct:20230824-v2"
    assert parsed.text == "\n\nThis is a test."
    assert parsed.finish_reason == "length"
    assert parsed.usage == Usage(input_tokens=5, output_tokens=7, total_tokens=12)


def test_completions_stream_without_include_usage_has_no_usage() -> None:
    """Chunks that all say ``"usage": null`` leave usage None, never zero."""
    events = [
        e
        for e in transcript_events("openai_completions_include_usage.sse")
        if '"choices":[]' not in e.data
    ]
    assert parse_events(COMPLETIONS, events).usage is None


# --- OpenAI Responses -----------------------------------------------------------------------


def test_responses_json_response() -> None:
    """A Responses JSON body yields output_text text, function calls, status and usage."""
    parsed = parse_json(RESPONSES, RESPONSES_RESPONSE)
    assert parsed.model == "gpt-4.1-2025-04-14"
    assert parsed.text == "In a peaceful grove beneath a silver moon..."
    assert parsed.tool_calls == [RESPONSES_FUNCTION_CALL]
    assert parsed.finish_reason == "completed"
    assert parsed.usage == Usage(
        input_tokens=36, output_tokens=87, total_tokens=123, cache_read_tokens=0
    )
    assert parsed.raw_usage == RESPONSES_USAGE
    assert parsed.error is None


def test_responses_json_incomplete_reason_is_the_finish_reason() -> None:
    """An incomplete response's finish reason is its ``incomplete_details.reason``."""
    body = {
        **RESPONSES_RESPONSE,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    assert parse_json(RESPONSES, body).finish_reason == "max_output_tokens"


def test_responses_json_failed_response_error() -> None:
    """A failed response's ``error`` object becomes the error."""
    body = {
        **RESPONSES_RESPONSE,
        "status": "failed",
        "output": [],
        "error": {"code": "server_error", "message": "The model failed to generate a response."},
    }
    parsed = parse_json(RESPONSES, body)
    assert parsed.finish_reason == "failed"
    assert parsed.error == "server_error: The model failed to generate a response."
    assert parsed.text is None


def test_responses_stream() -> None:
    """A Responses stream yields delta text, the finished function call and final usage."""
    parsed = parse_events(RESPONSES, transcript_events("openai_responses_function_call.sse"))
    assert parsed.model == "gpt-4.1-2025-04-14"
    assert parsed.text == "Je regarde la météo à Paris."
    assert parsed.finish_reason == "completed"
    assert parsed.usage == Usage(
        input_tokens=75, output_tokens=24, total_tokens=99, cache_read_tokens=0
    )
    assert parsed.raw_usage is not None
    assert parsed.raw_usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert parsed.tool_calls == [
        {
            "type": "function_call",
            "id": "fc_67c9fdd0a1b48190a7c2b5e6d3f1e09a07b8b0ad4e5eb654",
            "status": "completed",
            "arguments": '{"city":"Paris"}',
            "call_id": "call_p8Xk2Lm9Qr4Tv6Wy1Za3Bc5D",
            "name": "get_weather",
        }
    ]


def test_responses_stream_cut_before_completion() -> None:
    """A Responses stream cut before ``response.completed`` has the model, text, no usage."""
    events = transcript_events("openai_responses_function_call.sse")[:-1]
    parsed = parse_events(RESPONSES, events)
    assert parsed.model == "gpt-4.1-2025-04-14"
    assert parsed.text == "Je regarde la météo à Paris."
    assert parsed.usage is None
    assert parsed.finish_reason == "in_progress"


def test_responses_stream_incomplete() -> None:
    """``response.incomplete`` gives usage and the incomplete reason as finish reason."""
    response = {
        **RESPONSES_RESPONSE,
        "status": "incomplete",
        "incomplete_details": {"reason": "content_filter"},
    }
    events = sse({"type": "response.incomplete", "sequence_number": 9, "response": response})
    parsed = parse_events(RESPONSES, events)
    assert parsed.finish_reason == "content_filter"
    assert parsed.usage == Usage(36, 87, 123, cache_read_tokens=0)


def test_responses_stream_failed() -> None:
    """``response.failed`` sets the error from the response object."""
    response = {
        **RESPONSES_RESPONSE,
        "status": "failed",
        "usage": None,
        "error": {"code": "rate_limit_exceeded", "message": "Slow down"},
    }
    parsed = parse_events(
        RESPONSES, sse({"type": "response.failed", "response": response}, named=True)
    )
    assert parsed.error == "rate_limit_exceeded: Slow down"
    assert parsed.finish_reason == "failed"
    assert parsed.usage is None


def test_responses_stream_error_event() -> None:
    """An ``error`` event sets the error from its code and message."""
    events = sse(
        {
            "type": "error",
            "code": "ERR_SOMETHING",
            "message": "Something went wrong",
            "param": None,
            "sequence_number": 1,
        },
        named=True,
    )
    assert parse_events(RESPONSES, events).error == "ERR_SOMETHING: Something went wrong"


# --- OpenAI embeddings ----------------------------------------------------------------------


def test_embeddings_json_response() -> None:
    """Embeddings yield model and input/total tokens; no output tokens and no text."""
    parsed = parse_json(EMBEDDINGS, EMBEDDINGS_RESPONSE)
    assert parsed.model == "text-embedding-3-small"
    assert parsed.usage == Usage(input_tokens=8, output_tokens=None, total_tokens=8)
    assert parsed.raw_usage == {"prompt_tokens": 8, "total_tokens": 8}
    assert parsed.text is None
    assert parsed.tool_calls == []
    assert "0.0023064255" not in repr(parsed)


def test_embeddings_ignore_events() -> None:
    """Embeddings do not stream; any event is ignored."""
    assert parse_events(EMBEDDINGS, sse(EMBEDDINGS_RESPONSE)) == ParsedResponse()


def test_embeddings_error_body() -> None:
    """An error body on the embeddings endpoint sets the error and no usage."""
    parsed = parse_json(EMBEDDINGS, OPENAI_ERROR)
    assert parsed.error is not None
    assert parsed.error.startswith("invalid_request_error: ")
    assert parsed.usage is None


# --- Anthropic messages ---------------------------------------------------------------------


def test_messages_json_response() -> None:
    """A messages JSON body yields text, tool_use calls, stop reason and summed total."""
    parsed = parse_json(MESSAGES, MESSAGES_RESPONSE)
    assert parsed.model == "claude-sonnet-4-5-20250929"
    assert parsed.text == "I'll check the weather. "
    assert parsed.tool_calls == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        }
    ]
    assert parsed.finish_reason == "tool_use"
    assert parsed.usage == Usage(2095, 503, 2598, cache_read_tokens=1024, cache_write_tokens=0)
    assert parsed.raw_usage == MESSAGES_USAGE


def test_messages_json_total_needs_both_counts() -> None:
    """The total is only computed when both input and output counts are known."""
    body = {**MESSAGES_RESPONSE, "usage": {"input_tokens": 10}}
    assert parse_json(MESSAGES, body).usage == Usage(input_tokens=10)


def test_messages_json_error_body() -> None:
    """An Anthropic error body yields its type and message."""
    assert parse_json(MESSAGES, ANTHROPIC_ERROR).error == "overloaded_error: Overloaded"


def test_messages_stream_with_tool_use() -> None:
    """A messages stream yields text, the parsed tool input, stop reason and final usage."""
    parsed = parse_events(MESSAGES, transcript_events("anthropic_messages_tool_use.sse"))
    assert parsed.model == "claude-sonnet-4-5-20250929"
    assert parsed.text == "Okay, let's check the weather for San Francisco, CA — un instant ☀️:"
    assert parsed.tool_calls == [
        {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "fahrenheit"},
        }
    ]
    assert parsed.finish_reason == "tool_use"
    assert parsed.usage == Usage(472, 89, 561, cache_read_tokens=0, cache_write_tokens=0)
    assert parsed.raw_usage is not None
    assert parsed.raw_usage["cache_read_input_tokens"] == 0
    assert parsed.raw_usage["output_tokens"] == 89


def message_start(input_tokens: int = 25, output_tokens: int = 1) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-1-20250805",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
    }


def message_delta(usage: dict[str, Any], stop_reason: str | None = "end_turn") -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage,
    }


def test_messages_stream_input_from_start_output_replaced_not_summed() -> None:
    """Input tokens come from message_start; each message_delta replaces the output count."""
    events = sse(
        message_start(input_tokens=25, output_tokens=1),
        message_delta({"output_tokens": 10}, stop_reason=None),
        message_delta({"output_tokens": 15}),
        named=True,
    )
    parsed = parse_events(MESSAGES, events)
    assert parsed.usage == Usage(input_tokens=25, output_tokens=15, total_tokens=40)
    assert parsed.finish_reason == "end_turn"
    assert parsed.model == "claude-opus-4-1-20250805"


def test_messages_stream_placeholder_output_is_not_final() -> None:
    """A stream cut before message_delta keeps input tokens but no output count or total."""
    parsed = parse_events(MESSAGES, sse(message_start(25, 1), named=True))
    assert parsed.usage == Usage(input_tokens=25, output_tokens=None, total_tokens=None)


def test_messages_stream_delta_input_tokens_replace_start() -> None:
    """Input tokens present in message_delta (newer APIs) replace those of message_start."""
    usage = {
        "input_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
        "output_tokens": 12,
        "server_tool_use": None,
    }
    parsed = parse_events(MESSAGES, sse(message_start(25, 1), message_delta(usage), named=True))
    assert parsed.usage == Usage(30, 12, 42, cache_read_tokens=7, cache_write_tokens=0)
    assert parsed.raw_usage == {
        "input_tokens": 30,
        "output_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
    }


def test_messages_stream_zero_output_replaces() -> None:
    """A cumulative count of zero replaces the earlier count too."""
    events = sse(
        message_start(5, 1),
        message_delta({"output_tokens": 3}),
        message_delta({"output_tokens": 0}),
        named=True,
    )
    assert parse_events(MESSAGES, events).usage == Usage(5, 0, 5)


def tool_use_events(*partials: str, initial_input: Any = None) -> list[SSEEvent]:
    block = {"type": "tool_use", "id": "toolu_X", "name": "lookup", "input": initial_input or {}}
    payloads: list[Any] = [
        message_start(),
        {"type": "content_block_start", "index": 0, "content_block": block},
    ]
    for partial in partials:
        payloads.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": partial},
            }
        )
    return sse(*payloads, {"type": "content_block_stop", "index": 0}, named=True)


def test_messages_stream_unparseable_tool_input_is_kept_as_string() -> None:
    """Tool input JSON that does not parse is kept as the concatenated string."""
    parsed = parse_events(MESSAGES, tool_use_events('{"q": "unfinished'))
    assert parsed.tool_calls == [{"id": "toolu_X", "name": "lookup", "input": '{"q": "unfinished'}]


def test_messages_stream_tool_without_deltas_keeps_start_input() -> None:
    """A tool_use block with no input deltas keeps the input given at block start."""
    parsed = parse_events(MESSAGES, tool_use_events())
    assert parsed.tool_calls == [{"id": "toolu_X", "name": "lookup", "input": {}}]


def test_messages_stream_error_event() -> None:
    """An ``error`` event mid-stream sets the error."""
    parsed = parse_events(MESSAGES, sse(message_start(), ANTHROPIC_ERROR, named=True))
    assert parsed.error == "overloaded_error: Overloaded"
    assert parsed.usage == Usage(input_tokens=25)


def test_messages_stream_ignores_thinking_and_ping() -> None:
    """Thinking deltas, signatures and pings add no text."""
    events = sse(
        message_start(),
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Let me think"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "Eq"},
        },
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "42"}},
        named=True,
    )
    assert parse_events(MESSAGES, events).text == "42"


# --- text capture bound ---------------------------------------------------------------------

STREAMS = [
    (CHAT, "openai_chat_include_usage.sse"),
    (COMPLETIONS, "openai_completions_include_usage.sse"),
    (RESPONSES, "openai_responses_function_call.sse"),
    (MESSAGES, "anthropic_messages_tool_use.sse"),
]


@pytest.mark.parametrize(("parser", "name"), STREAMS, ids=[name for _, name in STREAMS])
@pytest.mark.parametrize("cap", [0, 1, 5, 9, 10, 11, 12])
def test_stream_text_is_capped_and_usage_still_parsed(
    parser: EndpointParser, name: str, cap: int
) -> None:
    """Past the cap, text stops growing and is flagged truncated; usage and finish still parse."""
    events = transcript_events(name)
    full = parse_events(parser, events)
    capped = parse_events(parser, events, max_text_bytes=cap)
    assert full.text is not None
    assert capped.text_truncated is True
    assert full.text.startswith(capped.text or "")
    assert len((capped.text or "").encode()) <= cap
    assert (capped.usage, capped.finish_reason, capped.model) == (
        full.usage,
        full.finish_reason,
        full.model,
    )
    assert full.usage is not None


@pytest.mark.parametrize(("parser", "name"), STREAMS, ids=[name for _, name in STREAMS])
def test_text_exactly_at_the_cap_is_not_truncated(parser: EndpointParser, name: str) -> None:
    """Text that fits the cap exactly is kept whole and not flagged."""
    events = transcript_events(name)
    full = parse_events(parser, events).text or ""
    exact = parse_events(parser, events, max_text_bytes=len(full.encode()))
    assert (exact.text, exact.text_truncated) == (full, False)


def test_cap_never_splits_a_character() -> None:
    """The cap cuts at a character boundary, dropping a character that does not fit."""
    events = sse({"model": "m", "choices": [{"index": 0, "delta": {"content": "a☕b"}}]})
    parsed = parse_events(CHAT, events, max_text_bytes=3)
    assert (parsed.text, parsed.text_truncated) == ("a", True)


def test_json_text_is_capped_too() -> None:
    """A JSON response's text is capped the same way, its usage kept."""
    parsed = parse_json(CHAT, CHAT_RESPONSE, max_text_bytes=5)
    assert (parsed.text, parsed.text_truncated) == ("Hello", True)
    assert parsed.usage == Usage(19, 10, 29, cache_read_tokens=0)


def test_streamed_tool_arguments_are_capped() -> None:
    """Streamed tool-call arguments past the cap stop growing and set the truncated flag."""
    parsed = parse_events(CHAT, transcript_events("openai_chat_tool_calls.sse"), max_text_bytes=8)
    assert parsed.text_truncated is True
    assert parsed.tool_calls[0]["function"]["arguments"] == '{"locati'


def test_result_can_be_read_twice() -> None:
    """Reading the result does not consume or change the parser's state."""
    for parser, name in STREAMS:
        response_parser = parser.response_parser(BIG)
        for event in transcript_events(name):
            response_parser.feed_event(event)
        assert response_parser.result() == response_parser.result()


# --- never raise ----------------------------------------------------------------------------

JSON_BODIES = [
    (CHAT, CHAT_RESPONSE),
    (CHAT, CHAT_TOOL_RESPONSE),
    (COMPLETIONS, COMPLETIONS_RESPONSE),
    (RESPONSES, RESPONSES_RESPONSE),
    (EMBEDDINGS, EMBEDDINGS_RESPONSE),
    (MESSAGES, MESSAGES_RESPONSE),
]
WRONG_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], [None], {}, {"type": 1}]


def mutations(value: Any) -> Iterator[Any]:
    """Copies of ``value`` with exactly one node (at any depth) replaced by a wrong value."""
    yield from WRONG_VALUES
    if isinstance(value, dict):
        for key, child in value.items():
            for mutated in mutations(child):
                yield {**value, key: mutated}
    elif isinstance(value, list):
        for index, child in enumerate(value):
            for mutated in mutations(child):
                yield [*value[:index], mutated, *value[index + 1 :]]


def safe_dumps(value: Any) -> bytes:
    return orjson.dumps(value)


@pytest.mark.parametrize("parser", ALL_PARSERS, ids=lambda p: p.name)
def test_random_bytes_never_raise(parser: EndpointParser) -> None:
    """Random bytes as a request, a JSON body or event data never make a parser raise."""
    rng = random.Random(parser.name)
    for _ in range(300):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        parser.parse_request(blob)
        response_parser = parser.response_parser(rng.randrange(0, 64))
        response_parser.feed_json(blob)
        text = blob.decode("utf-8", "replace")
        response_parser.feed_event(SSEEvent(event=text[:8] or "message", data=text))
        response_parser.result()


@pytest.mark.parametrize(("parser", "body"), JSON_BODIES, ids=lambda x: getattr(x, "name", ""))
def test_truncated_json_never_raises(parser: EndpointParser, body: Any) -> None:
    """A JSON body cut at any byte leaves fields empty instead of raising."""
    raw = orjson.dumps(body)
    for offset in range(len(raw)):
        parsed = parse_json(parser, raw[:offset])
        assert parsed.usage is None


@pytest.mark.parametrize(("parser", "body"), JSON_BODIES, ids=lambda x: getattr(x, "name", ""))
def test_wrong_types_in_json_never_raise(parser: EndpointParser, body: Any) -> None:
    """Any single value of a JSON body replaced by a wrong type never makes a parser raise."""
    for mutated in mutations(body):
        parsed = parse_json(parser, mutated, max_text_bytes=16)
        usage = parsed.usage
        if usage is not None:
            for count in (usage.input_tokens, usage.output_tokens, usage.total_tokens):
                assert count is None or (isinstance(count, int) and not isinstance(count, bool))
        parser.parse_request(safe_dumps(mutated))


@pytest.mark.parametrize(("parser", "name"), STREAMS, ids=[name for _, name in STREAMS])
def test_wrong_types_in_stream_events_never_raise(parser: EndpointParser, name: str) -> None:
    """Any single value in any event replaced by a wrong type never makes a parser raise."""
    events = transcript_events(name)
    for position, event in enumerate(events):
        if event.data == "[DONE]":
            continue
        for mutated in mutations(orjson.loads(event.data)):
            response_parser = parser.response_parser(16)
            for before in events[:position]:
                response_parser.feed_event(before)
            response_parser.feed_event(
                SSEEvent(event=event.event, data=safe_dumps(mutated).decode())
            )
            for after in events[position + 1 : position + 3]:
                response_parser.feed_event(after)
            response_parser.result()


@pytest.mark.parametrize(("parser", "name"), STREAMS, ids=[name for _, name in STREAMS])
def test_truncated_event_data_never_raises(parser: EndpointParser, name: str) -> None:
    """Event data cut short at any character is ignored without raising."""
    events = transcript_events(name)
    response_parser = parser.response_parser(BIG)
    for event in events:
        for cut in range(0, len(event.data), 7):
            response_parser.feed_event(SSEEvent(event=event.event, data=event.data[:cut]))
    response_parser.result()


def test_deeply_nested_json_never_raises() -> None:
    """JSON nested past the decoder's depth limit is treated as malformed."""
    body = b"[" * 100_000 + b"]" * 100_000
    for parser in ALL_PARSERS:
        assert parse_json(parser, body) == ParsedResponse()
        assert parser.parse_request(body).model is None
