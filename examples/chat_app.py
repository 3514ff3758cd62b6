"""The example's web app: a chat page whose answers carry the <feedback-widget>.

The backend calls the model through feedback-proxy with the official ``openai`` SDK: each
question is one trace (so a thumbs on an answer is that trace's verdict), the browser's
conversation is its session. The page gets the answer's text and feedback token, and the
widget (loaded from the proxy, another origin) sends the vote straight to the proxy.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from importlib.resources import files

import openai
from aiohttp import web

from feedback_proxy import Trace, answer_ids

OPENAI = web.AppKey("openai", openai.AsyncOpenAI)
URLS = web.AppKey("urls", dict)
MODEL = "gpt-4o-mini"


def create_chat_app(proxy_url: str, admin_url: str) -> web.Application:
    """The chat page and its one API route, calling the model through ``proxy_url``."""
    app = web.Application()
    app[URLS] = {"proxy": proxy_url.rstrip("/"), "admin": admin_url.rstrip("/")}
    app.cleanup_ctx.append(_openai_client)
    app.router.add_get("/", page)
    app.router.add_post("/api/chat", chat)
    return app


async def _openai_client(app: web.Application) -> AsyncIterator[None]:
    """One SDK client for the app; the proxy passes the key on to the (fake) provider."""
    client = openai.AsyncOpenAI(base_url=f"{app[URLS]['proxy']}/v1", api_key="sk-example")
    app[OPENAI] = client
    yield
    await client.close()


async def page(request: web.Request) -> web.Response:
    template = files("examples").joinpath("chat.html").read_text(encoding="utf-8")
    urls = request.app[URLS]
    body = template.replace("{{proxy}}", html.escape(urls["proxy"])).replace(
        "{{admin}}", html.escape(urls["admin"])
    )
    return web.Response(text=body, content_type="text/html")


async def chat(request: web.Request) -> web.Response:
    """One question → one traced model call → the answer, its trace ID and feedback token."""
    question = str((await request.json()).get("message", "")).strip()[:2000]
    if not question:
        return web.json_response({"error": "message: must not be empty"}, status=400)
    session = request.headers.get("X-Chat-Session") or uuid.uuid4().hex
    trace = Trace(name="example-chat", session_id=session, user_id="demo-user", tags=["example"])
    model = trace.client(request.app[OPENAI])
    raw = await model.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    ids = answer_ids(raw)
    return web.json_response({
        "answer": raw.parse().choices[0].message.content,
        "trace_id": ids.trace_id,
        "feedback_token": ids.feedback_token,
        "trace_url": f"{request.app[URLS]['admin']}/api/traces/{ids.trace_id}",
    })  # fmt: skip
