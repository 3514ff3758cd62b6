"""Clients pointed at a proxy under test, as a user's code would build them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai

from tests.conftest import RunningProxy


def oai(proxy: RunningProxy, trace_id: str | None = None, **headers: str) -> openai.AsyncOpenAI:
    """The official openai SDK pointed at the proxy's ``/openai/v1`` route, sending ``headers``
    (and ``X-Trace-Id: trace_id``, when given) on every call; no retries, so a test sees the
    proxy's first answer."""
    trace = {"X-Trace-Id": trace_id} if trace_id is not None else {}
    return openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="sk-secret-openai-key",
        max_retries=0,
        default_headers={**trace, **headers},
    )


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **params: Any
) -> tuple[int, Any]:
    """One JSON request (``body`` as JSON, ``params`` in the query); (status, JSON answer)."""
    async with http.request(method, url, json=body, params=params or None) as response:
        return response.status, await response.json()


async def text_of(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[str, str]:
    """A GET that must answer 200: (Content-Type, body as UTF-8 text)."""
    async with http.get(url, params=params) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text(encoding="utf-8")


def rows_url(admin: RunningProxy, name: str = "regressions") -> str:
    """The admin API's rows of dataset ``name``."""
    return f"{admin.admin_url}/api/datasets/{name}/rows"


async def raw_call(port: int, headers: list[tuple[bytes, bytes]], trace_id: str) -> int:
    """One chat call to the proxy on ``port`` written byte for byte (header values need not be
    UTF-8, which aiohttp's client would refuse to send); its status."""
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    lines = [b"POST /openai/v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1",
             b"Content-Type: application/json", b"Connection: close",
             b"Content-Length: " + str(len(body)).encode(), b"X-Trace-Id: " + trace_id.encode()]
    lines += [name + b": " + value for name, value in headers]  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])
