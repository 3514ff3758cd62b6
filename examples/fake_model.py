"""A tiny stand-in for an OpenAI-compatible model, so the examples run air-gapped.

``POST .../chat/completions`` answers with a canned reply that quotes the last user message,
as JSON or, with ``"stream": true``, as server-sent events. Nothing else: it is a prop, not a
test double (the tests have their own, far stricter one in ``tests/fake_provider.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web


def reply_for(body: dict[str, Any]) -> str:
    """The answer to the conversation's last user message."""
    asked = next(
        (m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
        "",
    )
    return (
        f"You asked: “{asked}”. I am the example's fake model, so here is a confident answer "
        "that may or may not be right. Was it helpful?"
    )


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": len(text.split()),
            "total_tokens": 12 + len(text.split()),
        },
    }


async def _stream(request: web.Request, body: dict[str, Any], text: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for word in text.split(" "):
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                 "model": body.get("model", "fake-model"),
                 "choices": [{"index": 0, "delta": {"content": word + " "}}]}  # fmt: skip
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    text = reply_for(body)
    if body.get("stream"):
        return await _stream(request, body, text)
    return web.json_response(_completion(body, text))


def create_fake_model() -> web.Application:
    app = web.Application()
    app.router.add_post("/{prefix:.*}chat/completions", chat_completions)
    return app
