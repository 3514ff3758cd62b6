"""A fake LLM provider: a real aiohttp server on 127.0.0.1 speaking OpenAI and Anthropic.

Every proxy test uses it as the upstream. Answers are deterministic so tests can assert exact
values:

- reply text: ``reply_text(model)`` = ``"Hello from fake <model>!"`` (model ``big``: ~300 KB);
- streams send that text in ``REPLY_PIECES`` (5) pieces, ``reply_pieces(model)``;
- usage: input/prompt tokens = ``prompt_tokens(body)`` (whitespace-separated words of the input),
  output/completion tokens = ``COMPLETION_TOKENS`` (5), total = their sum;
- embeddings: ``embedding_vector(i)`` for the i-th input, ``EMBEDDING_DIMENSIONS`` floats;
- prompt cache: a request header ``x-fake-cache: <read>,<write>`` makes the usage report that
  many cached prompt tokens (OpenAI: ``prompt_tokens_details.cached_tokens`` = read, part of
  the prompt tokens; Anthropic: ``cache_read_input_tokens``/``cache_creation_input_tokens``,
  beside ``input_tokens``, as the real APIs count them).

Misbehaviour is chosen by the request's ``model`` (see ``BEHAVIOURS``). The SDKs retry 429 and
5xx answers, so tests of ``error-500`` / ``error-429`` should build their clients with
``max_retries=0``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web
from multidict import CIMultiDict

REPLY_PIECES = 5
COMPLETION_TOKENS = REPLY_PIECES
SLOW_DELAY = 0.15
HANG_SECONDS = 3600.0
BIG_REPLY_BYTES = 300_000
EMBEDDING_DIMENSIONS = 8
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS: dict[str, Any] = {"city": "Paris", "unit": "celsius"}
OPENAI_TOOL_CALL_ID = "call_fake_1"
ANTHROPIC_TOOL_USE_ID = "toolu_fake_1"
MODELS = ("gpt-4o-mini", "claude-3-5-haiku-latest", "text-embedding-3-small")
BEHAVIOURS = (
    "slow", "error-500", "error-429", "cut-mid-stream", "hang", "hang-mid-stream",
    "tools", "gzip", "echo-headers", "big",
)  # fmt: skip

Json = dict[str, Any]


# ----------------------------------------------------------------------------- expected values


def reply_text(model: str) -> str:
    """The assistant text the fake answers with for ``model``."""
    if model == "big":
        return ("big " * (BIG_REPLY_BYTES // 4)).rstrip() + "!"
    return f"Hello from fake {model}!"


def split_pieces(text: str, count: int = REPLY_PIECES) -> list[str]:
    """``text`` cut into ``count`` consecutive, nearly equal slices (joined they give ``text``)."""
    size = len(text)
    return [text[i * size // count : (i + 1) * size // count] for i in range(count)]


def reply_pieces(model: str) -> list[str]:
    """The content deltas of a stream for ``model``."""
    return split_pieces(reply_text(model))


def tool_arguments_json() -> str:
    """The tool call's arguments as the JSON string OpenAI sends (Anthropic streams the same)."""
    return json.dumps(TOOL_ARGUMENTS)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        return _texts(value.get("text", value.get("content")))
    return []


def prompt_tokens(body: Json) -> int:
    """Input tokens the fake reports: words in system/instructions/messages/prompt/input texts.

    Texts are message ``content`` strings or the ``text`` of content parts; token-id inputs
    count zero.
    """
    keys = ("system", "instructions", "messages", "prompt", "input")
    return sum(len(text.split()) for key in keys for text in _texts(body.get(key)))


def embedding_vector(index: int) -> list[float]:
    """The embedding of the ``index``-th input (exact in float32, so base64 round-trips)."""
    return [(index * EMBEDDING_DIMENSIONS + k) / 16 for k in range(EMBEDDING_DIMENSIONS)]


# ----------------------------------------------------------------------------- wire helpers


@dataclass
class ReceivedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Call:
    """What a handler needs to know about one model call."""

    seq: int
    body: Json
    headers: CIMultiDict[str]

    @property
    def model(self) -> str:
        return str(self.body.get("model") or "unknown")

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options") or {}
        return bool(options.get("include_usage"))

    @property
    def usage_in(self) -> int:
        return prompt_tokens(self.body)

    @property
    def cache(self) -> tuple[int, int]:
        """(cache read, cache write) prompt tokens the ``x-fake-cache`` header asks for."""
        read, _, write = self.headers.get("x-fake-cache", "0,0").partition(",")
        return int(read or 0), int(write or 0)

    def ident(self, prefix: str) -> str:
        return f"{prefix}fake{self.seq:04d}"


class Frame(NamedTuple):
    """One server-sent event: an optional ``event:`` name and its ``data:`` payload."""

    event: str | None
    data: Json | str

    def encode(self) -> bytes:
        data = self.data if isinstance(self.data, str) else _dumps(self.data)
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {data}\n\n".encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def openai_error(status: int, message: str) -> Json:
    kind = {400: "invalid_request_error", 404: "invalid_request_error", 429: "requests"}
    code = {429: "rate_limit_exceeded"}
    return {
        "error": {
            "message": message,
            "type": kind.get(status, "server_error"),
            "param": None,
            "code": code.get(status),
        }
    }


def anthropic_error(status: int, message: str) -> Json:
    kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}


def _usage_openai(call: Call) -> Json:
    usage_in = call.usage_in + call.cache[0]
    usage: Json = {
        "prompt_tokens": usage_in,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": usage_in + COMPLETION_TOKENS,
    }
    if "x-fake-cache" in call.headers:
        usage["prompt_tokens_details"] = {"cached_tokens": call.cache[0]}
    return usage


# ----------------------------------------------------------------------------- chat completions


def _chat_base(call: Call, kind: str) -> Json:
    return {
        "id": call.ident("chatcmpl-"),
        "object": kind,
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": "fp_fake",
    }


def _tool_call(arguments: str) -> Json:
    function = {"name": TOOL_NAME, "arguments": arguments}
    return {"id": OPENAI_TOOL_CALL_ID, "type": "function", "function": function}


def chat_json(call: Call) -> Json:
    message: Json = {"role": "assistant", "content": reply_text(call.model), "refusal": None}
    finish = "stop"
    if call.model == "tools":
        message.update(content=None, tool_calls=[_tool_call(tool_arguments_json())])
        finish = "tool_calls"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {
        **_chat_base(call, "chat.completion"),
        "choices": [choice],
        "usage": _usage_openai(call),
    }


def _chat_deltas(call: Call) -> tuple[list[Json], str]:
    if call.model == "tools":
        first = {"index": 0, **_tool_call("")}
        head = {"role": "assistant", "content": None, "tool_calls": [first]}
        parts = split_pieces(tool_arguments_json())
        tail = [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in parts]
        return [head, *tail], "tool_calls"
    head = {"role": "assistant", "content": "", "refusal": None}
    return [head, *({"content": piece} for piece in reply_pieces(call.model))], "stop"


def chat_frames(call: Call) -> list[Frame]:
    base = _chat_base(call, "chat.completion.chunk")
    extra: Json = {"usage": None} if call.include_usage else {}
    deltas, finish = _chat_deltas(call)
    choices: list[Json] = [
        {"index": 0, "delta": d, "logprobs": None, "finish_reason": None} for d in deltas
    ]
    choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
    chunks = [{**base, "choices": [choice], **extra} for choice in choices]
    if call.include_usage:
        chunks.append({**base, "choices": [], "usage": _usage_openai(call)})
    return [*(Frame(None, chunk) for chunk in chunks), Frame(None, "[DONE]")]


# ----------------------------------------------------------------------------- legacy completions


def _completion_base(call: Call) -> Json:
    return {
        "id": call.ident("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": "fp_fake",
    }


def _completion_choice(text: str, finish: str | None) -> Json:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}


def completion_json(call: Call) -> Json:
    choice = _completion_choice(reply_text(call.model), "stop")
    return {**_completion_base(call), "choices": [choice], "usage": _usage_openai(call)}


def completion_frames(call: Call) -> list[Frame]:
    base = _completion_base(call)
    extra: Json = {"usage": None} if call.include_usage else {}
    choices = [_completion_choice(piece, None) for piece in reply_pieces(call.model)]
    choices.append(_completion_choice("", "stop"))
    chunks = [{**base, "choices": [choice], **extra} for choice in choices]
    if call.include_usage:
        chunks.append({**base, "choices": [], "usage": _usage_openai(call)})
    return [*(Frame(None, chunk) for chunk in chunks), Frame(None, "[DONE]")]


# ----------------------------------------------------------------------------- responses API


def _output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_message(call: Call, text: str | None) -> Json:
    done = text is not None
    return {
        "id": call.ident("msg_"),
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_output_text(text)] if text is not None else [],
    }


def response_json(call: Call, *, done: bool = True) -> Json:
    usage_in = call.usage_in
    usage = {
        "input_tokens": usage_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": COMPLETION_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage_in + COMPLETION_TOKENS,
    }
    return {
        "id": call.ident("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if done else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": call.body.get("instructions"),
        "model": call.model,
        "output": [_output_message(call, reply_text(call.model))] if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "usage": usage if done else None,
        "metadata": {},
    }


def _response_events(call: Call) -> Iterable[Json]:
    text, item_id = reply_text(call.model), call.ident("msg_")
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    yield {"type": "response.created", "response": response_json(call, done=False)}
    yield {"type": "response.in_progress", "response": response_json(call, done=False)}
    item = _output_message(call, None)
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    yield {"type": "response.content_part.added", **where, "part": _output_text("")}
    for piece in reply_pieces(call.model):
        yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
    yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
    yield {"type": "response.content_part.done", **where, "part": _output_text(text)}
    item = _output_message(call, text)
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    yield {"type": "response.completed", "response": response_json(call)}


def response_frames(call: Call) -> list[Frame]:
    events = enumerate(_response_events(call))
    return [Frame(event["type"], {**event, "sequence_number": n}) for n, event in events]


# ----------------------------------------------------------------------------- embeddings


def _embedding_inputs(value: Any) -> list[Any]:
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return value
    return [value]


def _encode_vector(vector: list[float], encoding: str | None) -> list[float] | str:
    if encoding != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_json(call: Call) -> Json:
    encoding = call.body.get("encoding_format")
    inputs = _embedding_inputs(call.body.get("input"))
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode_vector(embedding_vector(i), encoding),
        }
        for i in range(len(inputs))
    ]
    usage_in = call.usage_in
    usage = {"prompt_tokens": usage_in, "total_tokens": usage_in}
    return {"object": "list", "data": data, "model": call.model, "usage": usage}


# ----------------------------------------------------------------------------- anthropic messages


def _anthropic_usage(call: Call, output_tokens: int) -> Json:
    return {
        "input_tokens": call.usage_in,
        "cache_creation_input_tokens": call.cache[1],
        "cache_read_input_tokens": call.cache[0],
        "output_tokens": output_tokens,
    }


def _anthropic_message(call: Call, content: list[Json], stop: str | None, out: int) -> Json:
    return {
        "id": call.ident("msg_"),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(call, out),
    }


def messages_json(call: Call) -> Json:
    if call.model == "tools":
        block = {"type": "tool_use", "id": ANTHROPIC_TOOL_USE_ID, "name": TOOL_NAME}
        return _anthropic_message(
            call, [{**block, "input": TOOL_ARGUMENTS}], "tool_use", COMPLETION_TOKENS
        )
    content = [{"type": "text", "text": reply_text(call.model)}]
    return _anthropic_message(call, content, "end_turn", COMPLETION_TOKENS)


def _anthropic_block(call: Call) -> tuple[Json, list[Json], str]:
    if call.model == "tools":
        block = {"type": "tool_use", "id": ANTHROPIC_TOOL_USE_ID, "name": TOOL_NAME, "input": {}}
        parts = split_pieces(tool_arguments_json())
        return block, [{"type": "input_json_delta", "partial_json": p} for p in parts], "tool_use"
    deltas = [{"type": "text_delta", "text": piece} for piece in reply_pieces(call.model)]
    return {"type": "text", "text": ""}, deltas, "end_turn"


def messages_frames(call: Call) -> list[Frame]:
    block, deltas, stop = _anthropic_block(call)
    events: list[Json] = [
        # Like the real API, message_start carries a provisional output_tokens (1); the final
        # count comes in message_delta.usage.
        {"type": "message_start", "message": _anthropic_message(call, [], None, 1)},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": COMPLETION_TOKENS},
        },
        {"type": "message_stop"},
    ]
    return [Frame(event["type"], event) for event in events]


# ----------------------------------------------------------------------------- routing


class Endpoint(NamedTuple):
    json: Callable[[Call], Json]
    frames: Callable[[Call], list[Frame]] | None  # None: answers JSON even when asked to stream
    error: Callable[[int, str], Json]


ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint(chat_json, chat_frames, openai_error),
    "/v1/completions": Endpoint(completion_json, completion_frames, openai_error),
    "/v1/responses": Endpoint(response_json, response_frames, openai_error),
    "/v1/embeddings": Endpoint(embeddings_json, None, openai_error),
    "/v1/messages": Endpoint(messages_json, messages_frames, anthropic_error),
}


def models_json() -> Json:
    data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS]
    return {"object": "list", "data": data}


def accepts_gzip(headers: CIMultiDict[str]) -> bool:
    """Whether Accept-Encoding allows gzip (``gzip;q=0`` refuses it)."""
    for item in headers.get("Accept-Encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def echo_headers(headers: CIMultiDict[str]) -> dict[str, str]:
    echoed: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        echoed[key] = f"{echoed[key]}, {value}" if key in echoed else value
    return echoed


class _Encoder:
    """Identity or incremental gzip (each write sync-flushed, so every event arrives on its own)."""

    def __init__(self, gzip: bool) -> None:
        self._zip = zlib.compressobj(wbits=31) if gzip else None

    def encode(self, data: bytes) -> bytes:
        if self._zip is None:
            return data
        return self._zip.compress(data) + self._zip.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._zip.flush() if self._zip is not None else b""


def _json_bytes(call: Call, body: Json) -> bytes:
    if call.model == "echo-headers":
        body = {**body, "echo_headers": echo_headers(call.headers)}
    return _dumps(body).encode()


# ----------------------------------------------------------------------------- the server


class FakeProvider:
    """The fake provider server. ``start()`` binds 127.0.0.1 on a free port.

    ``requests`` lists every request received, in order; ``disconnects`` the monotonic times at
    which a handler noticed its client went away (a failed write, or aiohttp cancelling the
    handler because the peer closed, also while ``hang`` waits); ``streams_finished`` counts
    streams written to the end.
    """

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.disconnects: list[float] = []
        self.streams_finished = 0
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._disconnects_seen = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Cancel in-flight handlers (hangs too) and close the server."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # The lead's API names the parameter ``timeout``; it is applied with asyncio.timeout.
    async def wait_for_requests(self, n: int, timeout: float) -> None:
        """Wait until at least ``n`` requests were received; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            await self._until(lambda: len(self.requests) >= n)

    async def wait_for_disconnect(self, timeout: float) -> float:
        """Wait for the next disconnect not yet returned by this method; its monotonic time."""
        async with asyncio.timeout(timeout):
            await self._until(lambda: len(self.disconnects) > self._disconnects_seen)
        self._disconnects_seen += 1
        return self.disconnects[self._disconnects_seen - 1]

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _record_disconnect(self) -> None:
        self.disconnects.append(time.monotonic())
        self._notify()

    @contextlib.asynccontextmanager
    async def _watch_disconnect(self) -> AsyncIterator[None]:
        """Record a client going away (a failed write, or aiohttp cancelling the handler)."""
        try:
            yield
        except ConnectionResetError:
            self._record_disconnect()
        except asyncio.CancelledError:
            if not self._stopping:
                self._record_disconnect()
            raise

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self._dispatch(request)
        finally:
            self._tasks.discard(task)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = CIMultiDict(request.headers)
        received = ReceivedRequest(
            request.method, request.path, request.query_string, headers, body
        )
        self.requests.append(received)
        self._notify()
        endpoint = ENDPOINTS.get(request.path) if request.method == "POST" else None
        if request.method == "GET" and request.path == "/v1/models":
            return web.json_response(models_json())
        if endpoint is None:
            message = f"Invalid URL ({request.method} {request.path})"
            return web.json_response(openai_error(404, message), status=404)
        try:
            parsed = json.loads(body)
        except ValueError:
            return web.json_response(endpoint.error(400, "body is not valid JSON"), status=400)
        call = Call(len(self.requests) - 1, parsed, headers)
        return await self._answer(request, endpoint, call)

    async def _answer(
        self, request: web.Request, endpoint: Endpoint, call: Call
    ) -> web.StreamResponse:
        model = call.model
        if model in ("error-500", "error-429"):
            return self._error(endpoint, call, int(model[-3:]))
        if model == "hang":
            async with self._watch_disconnect():
                await asyncio.sleep(HANG_SECONDS)
        if call.stream and endpoint.frames is not None:
            return await self._stream(request, endpoint.frames(call), call)
        return await self._json(request, _json_bytes(call, endpoint.json(call)), call)

    def _error(self, endpoint: Endpoint, call: Call, status: int) -> web.Response:
        message = "Rate limit reached (fake)" if status == 429 else "The server had an error (fake)"
        headers = {"x-request-id": call.ident("req_")}
        if status == 429:
            headers["retry-after"] = "0"
        return web.json_response(endpoint.error(status, message), status=status, headers=headers)

    async def _json(self, request: web.Request, data: bytes, call: Call) -> web.StreamResponse:
        gzip = call.model == "gzip" and accepts_gzip(call.headers)
        if gzip:
            data = _gzip(data)
        response = web.StreamResponse(headers=_headers(call, "application/json", gzip))
        response.content_length = len(data)
        async with self._watch_disconnect():
            if call.model == "slow":
                await asyncio.sleep(SLOW_DELAY)
            await response.prepare(request)
            if call.model in ("cut-mid-stream", "hang-mid-stream"):
                await response.write(data[: len(data) // 2])
                return await self._misbehave(request, response, call.model)
            await response.write(data)
        return response

    async def _stream(
        self, request: web.Request, frames: list[Frame], call: Call
    ) -> web.StreamResponse:
        gzip = call.model == "gzip" and accepts_gzip(call.headers)
        response = web.StreamResponse(
            headers=_headers(call, "text/event-stream; charset=utf-8", gzip)
        )
        encoder = _Encoder(gzip)
        async with self._watch_disconnect():
            await response.prepare(request)
            for index, frame in enumerate(frames):
                if index and call.model == "slow":
                    await asyncio.sleep(SLOW_DELAY)
                await response.write(encoder.encode(frame.encode()))
                if (call.model, index) in (("hang-mid-stream", 0), ("cut-mid-stream", 1)):
                    return await self._misbehave(request, response, call.model)
            await response.write(encoder.finish())
            await response.write_eof()
            self.streams_finished += 1
            self._notify()
        return response

    async def _misbehave(
        self, request: web.Request, response: web.StreamResponse, model: str
    ) -> web.StreamResponse:
        """``hang-mid-stream`` never sends more; ``cut-mid-stream`` aborts the connection."""
        if model == "hang-mid-stream":
            await asyncio.sleep(HANG_SECONDS)
        assert request.transport is not None
        request.transport.abort()
        return response


def _gzip(data: bytes) -> bytes:
    zipper = zlib.compressobj(wbits=31)
    return zipper.compress(data) + zipper.flush()


def _headers(call: Call, content_type: str, gzip: bool) -> dict[str, str]:
    headers = {"Content-Type": content_type, "x-request-id": call.ident("req_")}
    if content_type.startswith("text/event-stream"):
        headers["Cache-Control"] = "no-cache"
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return headers


@contextlib.asynccontextmanager
async def started_fake_provider() -> AsyncIterator[FakeProvider]:
    """A started ``FakeProvider``, stopped on exit."""
    fake = FakeProvider()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
