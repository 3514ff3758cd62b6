"""Quiet, correct logs: a client that gives up before the answer's head is a counted, one-line
event (never a traceback), and ``feedback-proxy export ... | head`` ends without one."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.gateway.services import GATEWAY
from tests.conftest import StartProxy
from tests.recording_helpers import wait_for_trace
from tests.test_cli import minimal_env, serving
from tests.test_issue11_http import host_port
from tests.test_metrics import Samples, get, scrape_until

CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
CALLS = 5
STAGES = ("before_response", "during_response")


class HeldUpstream:
    """An upstream that holds each call until the test hands it what to do after answering
    (``then``): the client's reset then races the proxy's answer, as at the end of a load."""

    def __init__(self) -> None:
        self.arrived = asyncio.Queue[asyncio.Future[Callable[[], None]]]()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        then = asyncio.get_running_loop().create_future()
        await self.arrived.put(then)
        after = await asyncio.wait_for(then, 10)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write_eof(b'{"id": "x", "object": "chat.completion", "choices": []}')
        after()  # in the same loop turn as the answer's bytes, when the proxy runs in-process
        return response

    async def __aenter__(self) -> HeldUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def held() -> AsyncIterator[HeldUpstream]:
    async with HeldUpstream() as upstream:
        yield upstream


async def call_and_leave(
    url: str, upstream: HeldUpstream, headers: bytes = b"", *, racing: bool = False
) -> None:
    """Send a chat call, wait until it reached the upstream, and reset the connection (RST):
    before the upstream answers, or (``racing``) right after its answer left."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + headers + b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )  # fmt: skip
    await writer.drain()
    then = await asyncio.wait_for(upstream.arrived.get(), 10)

    def leave() -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    if racing:
        then.set_result(leave)
    else:
        leave()
        then.set_result(lambda: None)
    await asyncio.sleep(0)  # let the close go out
    del reader


async def test_clients_gone_before_the_answer_are_one_line_each_never_a_traceback(
    tmp_path: Path, held: HeldUpstream
) -> None:
    """The real ``serve``: five clients that leave early are five access lines saying
    ``client_disconnected``, no error line and no traceback on stderr."""
    async with serving(tmp_path, held.url) as served:
        await served.read_line()
        await served.wait_healthy()
        for i in range(CALLS):
            await call_and_leave(served.url, held, f"X-Trace-Id: gone-{i}\r\n".encode())
        async with aiohttp.ClientSession() as http:  # one ordinary call still answered
            task = asyncio.create_task(http.post(f"{served.url}/v1/chat/completions", data=CHAT))
            (await asyncio.wait_for(held.arrived.get(), 10)).set_result(lambda: None)
            async with await task as resp:
                assert resp.status == 200
                await resp.read()  # the whole answer: this client does not leave early
        code, stdout, stderr = await served.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr + stdout, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    gone = [e for e in events if e.get("error") == "client_disconnected"]
    assert sorted(e["trace_id"] for e in gone) == [f"gone-{i}" for i in range(CALLS)]
    assert all(e["event"] == "request" and e["level"] == "info" for e in gone)
    assert not [e for e in events if e["level"] in ("error", "critical")], stdout


async def test_clients_gone_before_the_answer_are_counted_and_never_an_error(
    start: StartProxy,
    held: HeldUpstream,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``feedback_proxy_client_disconnects_total`` counts every client that left, also those
    whose reset raced the answer's head (once a handler error with a traceback)."""
    proxy = await start(**{"upstreams.openai.base_url": held.url})
    for i in range(2 * CALLS):
        await call_and_leave(proxy.url, held, racing=i % 2 == 1)
    name = "feedback_proxy_client_disconnects_total"

    def gone(samples: Samples) -> float:
        return sum(get(samples, name, upstream="openai", stage=stage) or 0 for stage in STAGES)

    samples = await scrape_until(http, proxy.admin_url, lambda s: gone(s) >= 2 * CALLS)
    assert gone(samples) == 2 * CALLS
    assert (get(samples, name, upstream="openai", stage="before_response") or 0) >= CALLS
    out = capsys.readouterr().out
    assert "http server error" not in out, out
    assert "Traceback" not in out, out


async def test_a_reset_in_the_same_turn_as_the_head_is_counted_not_an_error(
    start: StartProxy,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under load a client's reset and the upstream's head can land in one loop turn: the
    transport is already closing when the proxy writes the head, and aiohttp cancels the
    handler only a turn later. Closing the transport just before the head recreates that
    state exactly; once an "http server error" (before: a traceback), now a counted leave."""
    proxy = await start()
    original = web.StreamResponse.prepare

    async def prepare_after_reset(self: web.StreamResponse, request: web.BaseRequest) -> Any:
        ours = isinstance(request, web.Request) and GATEWAY in request.app  # not the provider
        if ours and request.transport is not None:
            request.transport.close()  # what a reset does; connection_lost comes a turn later
        return await original(self, request)

    monkeypatch.setattr(web.StreamResponse, "prepare", prepare_after_reset)
    for _ in range(CALLS):
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{proxy.url}/v1/chat/completions", data=CHAT) as resp:
                await resp.read()
    name = "feedback_proxy_client_disconnects_total"
    samples = await scrape_until(
        http,
        proxy.admin_url,
        lambda s: (get(s, name, upstream="openai", stage="before_response") or 0) >= CALLS,
    )
    assert get(samples, name, upstream="openai", stage="before_response") == CALLS
    out = capsys.readouterr().out
    assert "http server error" not in out, out
    assert "Traceback" not in out, out
    assert out.count("error=client_disconnected") == CALLS, out


@pytest.mark.redis_backends
async def test_export_into_a_closed_pipe_exits_quietly(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """``feedback-proxy export ds | head`` when head has already gone: exit 141 (what a shell
    reports for any tool SIGPIPE ended), nothing on stderr, no traceback."""
    proxy = await start()
    async with http.post(f"{proxy.url}/v1/chat/completions", data=CHAT,
                         headers={"X-Trace-Id": "piped"}) as resp:  # fmt: skip
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, "piped")
    async with http.post(
        f"{proxy.admin_url}/api/datasets/ds/rows", json={"trace_ids": ["piped"]}
    ) as resp:
        assert resp.status == 200, await resp.text()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) is gone before the first row is written
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "export", "ds", "--format", "jsonl",
            "--admin-url", proxy.admin_url,
            stdout=write_end, stderr=asyncio.subprocess.PIPE, env=minimal_env(),
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert (process.returncode, err.decode()) == (141, "")
