"""Forwarding: what reaches the upstream, what the client gets back, and how failures look."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import time

import aiohttp
import orjson
import pytest
from yarl import URL

from proxy.store.embedded import free_port
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import FakeProvider, reply_pieces

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi there"}]}


def chat(model: str = "gpt-4o-mini", stream: bool = False) -> bytes:
    return orjson.dumps({**CHAT, "model": model, "stream": stream})


async def test_json_body_and_status_pass_unchanged_both_ways(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """The upstream gets the exact request bytes; the client gets the upstream's exact answer."""
    body = (
        b'{"model": "gpt-4o-mini",  "messages": [{"role":"user","content":"Gr\xc3\xbc\xc3\x9fe"}]}'
    )
    async with http.post(f"{proxy.url}/openai/v1/chat/completions?x=1&y=two", data=body,
                         headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
        via_proxy = await resp.read()
        assert resp.status == 200
    received = fake_provider.requests[-1]
    assert received.body == body
    assert received.method == "POST"
    assert received.path == "/v1/chat/completions"
    assert received.query_string == "x=1&y=two"
    assert received.headers["Content-Type"] == "application/json"
    async with http.post(f"{fake_provider.base_url}/v1/chat/completions", data=body) as direct:
        expected = orjson.loads(await direct.read())
    got = orjson.loads(via_proxy)
    assert {k: v for k, v in got.items() if k not in {"id", "created"}} == {
        k: v for k, v in expected.items() if k not in {"id", "created"}
    }


async def test_upstream_error_status_and_body_reach_client_unchanged(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A 500 from the provider is the client's 500, with the provider's own body."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat("error-500")) as resp:
        assert resp.status == 500
        body = orjson.loads(await resp.read())
    assert resp.headers["X-Trace-Id"]
    async with http.post(
        f"{fake_provider.base_url}/v1/chat/completions", data=chat("error-500")
    ) as direct:
        assert direct.status == 500
        assert body == orjson.loads(await direct.read())
    assert body["error"]["type"] == "server_error"  # the fake's; the proxy's errors never say it


async def test_default_route_v1_goes_to_default_upstream(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """/v1/... reaches the default upstream with the /v1 path kept."""
    async with http.get(f"{proxy.url}/v1/models") as resp:
        assert resp.status == 200
    assert fake_provider.requests[-1].path == "/v1/models"


async def test_unknown_upstream_is_404_listing_configured_names(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """An unknown prefix answers 404 in the OpenAI error shape, naming the upstreams."""
    async with http.post(f"{proxy.url}/nope/v1/chat/completions", data=chat()) as resp:
        assert resp.status == 404
        error = orjson.loads(await resp.read())["error"]
    assert error["code"] == "unknown_upstream"
    assert set(error["upstreams"]) == {"openai", "anthropic"}
    assert error["type"] == "invalid_request_error"
    assert resp.headers["X-Trace-Id"]
    assert fake_provider.requests == []


async def test_streamed_chunks_reach_client_before_upstream_finishes(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """SSE events arrive one by one as the upstream sends them, not buffered to the end."""
    arrivals: list[float] = []
    async with http.post(
        f"{proxy.url}/v1/chat/completions", data=chat("slow", stream=True)
    ) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for _ in resp.content.iter_any():
            arrivals.append(time.monotonic())
    pieces = len(reply_pieces("slow"))
    assert len(arrivals) >= pieces  # one write per event, not one big buffer
    # The upstream waits 150 ms between events: the first must arrive long before the last.
    assert arrivals[-1] - arrivals[0] >= 0.15 * (pieces - 1)


async def test_hop_by_hop_and_proxy_headers_are_not_forwarded(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """Connection-scoped headers and every header of ours stay at the proxy."""
    proxy = await start(**{"proxy.keys": ["pk-1"]})
    headers = {
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "1",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic abc",
        "X-Proxy-Key": "pk-1",
        "X-Trace-Id": "conv-42",
        "X-Trace-Name": "chat",
        "X-Session-Id": "s1",
        "X-User-Id": "u1",
        "X-Trace-Tags": "a,b",
        "X-Trace-Attributes": '{"k": 1}',
        "X-Parent-Span-Id": "p1",
        "X-Feedback": "negative",
        "X-Feedback-Comment": "bad",
        "adaline-trace-name": "n",
        "x-portkey-metadata": '{"a": "b"}',
        "Helicone-Property-Env": "prod",
        "Helicone-Session-Id": "hs",
        "X-Custom": "kept",
    }
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(), headers=headers) as resp:
        assert resp.status == 200
    received = {name.lower() for name in fake_provider.requests[-1].headers}
    dropped = {name.lower() for name in headers} - {"x-custom"}
    assert received & dropped == set()
    assert fake_provider.requests[-1].headers["X-Custom"] == "kept"


async def test_credentials_are_forwarded_unchanged(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """Authorization, x-api-key and api-key reach the provider exactly as sent."""
    creds = {"Authorization": "Bearer sk-secret-1", "x-api-key": "sk-ant-2", "api-key": "az-3"}
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(), headers=creds) as resp:
        assert resp.status == 200
    received = fake_provider.requests[-1].headers
    for name, value in creds.items():
        assert received[name] == value


@pytest.mark.parametrize(
    "sent",
    [
        {},
        {"X-Trace-Id": "conv-42"},
        {"X-Trace-Id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
        {"traceparent": "garbage"},
    ],
)
async def test_a_valid_traceparent_naming_our_span_is_always_sent_upstream(
    sent: dict[str, str],
    proxy: RunningProxy,
    fake_provider: FakeProvider,
    http: aiohttp.ClientSession,
) -> None:
    """Whatever the client sent, the upstream gets one valid traceparent naming our span."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(), headers=sent) as resp:
        assert resp.status == 200
        trace_id, span_id = resp.headers["X-Trace-Id"], resp.headers["X-Span-Id"]
    values = fake_provider.requests[-1].headers.getall("traceparent")
    assert len(values) == 1
    match = TRACEPARENT.match(values[0])
    assert match, values[0]
    assert match.group(2) == span_id
    assert match.group(1) != "0" * 32
    if re.fullmatch(r"[0-9a-f]{32}", trace_id):
        assert match.group(1) == trace_id


async def test_custom_trace_id_maps_to_the_same_w3c_id_every_time(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """The W3C trace-id derived from a custom X-Trace-Id is deterministic."""
    for _ in range(2):
        async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(),
                             headers={"X-Trace-Id": "conv-42"}) as resp:  # fmt: skip
            assert resp.headers["X-Trace-Id"] == "conv-42"
    first, second = (r.headers["traceparent"].split("-")[1] for r in fake_provider.requests)
    assert first == second


async def test_response_carries_trace_ids_and_exposes_them_to_browsers(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """X-Trace-Id and X-Span-Id are on the response and in Access-Control-Expose-Headers."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat()) as resp:
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Trace-Id"])
        assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Span-Id"])
        exposed = {
            h.strip().lower() for h in resp.headers["Access-Control-Expose-Headers"].split(",")
        }
    assert {"x-trace-id", "x-span-id"} <= exposed


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "ümlaut", "a/b"])
async def test_malformed_trace_id_is_400_and_nothing_is_forwarded(
    bad: str, proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A bad X-Trace-Id is rejected with an error naming the header; the upstream sees nothing."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(),
                         headers={"X-Trace-Id": bad}) as resp:  # fmt: skip
        assert resp.status == 400
        error = orjson.loads(await resp.read())["error"]
        assert resp.headers["X-Trace-Id"] != bad
    assert "X-Trace-Id" in error["message"]
    assert fake_provider.requests == []


async def test_non_utf8_header_bytes_get_400_not_500(
    proxy: RunningProxy, fake_provider: FakeProvider
) -> None:
    """Header values that are not UTF-8 are a clear client error, never a crash or an echo."""
    host, port = proxy.url.removeprefix("http://").split(":")
    for name in (b"X-Trace-Id", b"X-Custom"):
        reader, writer = await asyncio.open_connection(host, int(port))
        body = chat()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + name + b": caf\xe9\xff\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body
        )  # fmt: skip
        answer = await reader.read()
        writer.close()
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 400"), answer[:300]
        assert name in answer
        assert b"\xe9\xff" not in answer
    assert fake_provider.requests == []


async def test_upstream_down_is_502(start: StartProxy, http: aiohttp.ClientSession) -> None:
    """A refused connection answers 502 in the OpenAI error shape."""
    proxy = await start(**{"upstreams.openai.base_url": f"http://127.0.0.1:{free_port()}"})
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat()) as resp:
        assert resp.status == 502
        error = orjson.loads(await resp.read())["error"]
    assert error["code"] == "upstream_unreachable"
    assert resp.headers["X-Span-Id"]


async def test_upstream_silent_past_read_timeout_is_504(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """An upstream that sends nothing within read_timeout answers 504."""
    proxy = await start(**{"upstreams.openai.read_timeout": 0.3})
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat("hang")) as resp:
        assert resp.status == 504
        error = orjson.loads(await resp.read())["error"]
    assert error["code"] == "read_timeout"


async def test_client_disconnect_closes_upstream_connection_within_a_second(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """When the client goes away mid-stream, the proxy drops the upstream call at once."""
    resp = await http.post(f"{proxy.url}/v1/chat/completions", data=chat("hang-mid-stream", True))
    await resp.content.readany()
    gone = time.monotonic()
    resp.close()  # closes the client's connection
    noticed = await fake_provider.wait_for_disconnect(timeout=5)
    assert noticed - gone < 1.0


async def test_upstream_cut_mid_stream_leaves_client_stream_incomplete(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A stream the upstream broke off ends broken for the client: no clean end, no [DONE]."""
    received: list[bytes] = []

    async def read_all() -> None:
        async with http.post(f"{proxy.url}/v1/chat/completions",
                             data=chat("cut-mid-stream", True)) as resp:  # fmt: skip
            async for chunk in resp.content.iter_any():
                received.append(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read_all()
    assert received  # the events before the cut did arrive
    assert b"[DONE]" not in b"".join(received)


async def test_upstream_silent_mid_stream_breaks_client_stream(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """A read timeout after the response started breaks the client's stream too."""
    proxy = await start(**{"upstreams.openai.read_timeout": 0.3})
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{proxy.url}/v1/chat/completions",
                             data=chat("hang-mid-stream", True)) as resp:  # fmt: skip
            await resp.read()


async def test_body_over_cap_is_413_and_nothing_is_forwarded(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A request body larger than proxy.max_body_bytes never reaches the upstream."""
    proxy = await start(**{"proxy.max_body_bytes": 1000})
    async with http.post(f"{proxy.url}/v1/chat/completions", data=b"x" * 1001) as resp:
        assert resp.status == 413
        error = orjson.loads(await resp.read())["error"]
    assert "max_body_bytes" in error["message"]
    assert fake_provider.requests == []


async def test_chunked_body_over_cap_is_413(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A streamed body without Content-Length is cut off at the cap with 413."""
    proxy = await start(**{"proxy.max_body_bytes": 300_000})

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"y" * 10_000

    async with http.post(f"{proxy.url}/v1/chat/completions", data=body()) as resp:
        assert resp.status == 413
    assert all(len(r.body) < 300_000 for r in fake_provider.requests)


async def test_large_body_under_cap_is_streamed_through_intact(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A body above the read-whole threshold arrives byte for byte."""
    body = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "z" * 900_000}]})
    async with http.post(f"{proxy.url}/v1/chat/completions", data=body) as resp:
        assert resp.status == 200
    assert fake_provider.requests[-1].body == body


async def test_gzip_answer_passes_with_matching_content_encoding(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Compressed answers keep Content-Encoding and the compressed bytes together."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat("gzip"),
                         headers={"Accept-Encoding": "gzip"}) as resp:  # fmt: skip
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(raw))["choices"][0]["message"]["content"]


async def test_no_accept_encoding_means_plain_bytes(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """The proxy adds no Accept-Encoding of its own, so the answer is not compressed."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat("gzip"),
                         skip_auto_headers=["Accept-Encoding"]) as resp:  # fmt: skip
        raw = await resp.read()
        assert "Content-Encoding" not in resp.headers
    assert "accept-encoding" not in {h.lower() for h in fake_provider.requests[-1].headers}
    assert orjson.loads(raw)["object"] == "chat.completion"


async def test_proxy_key_required_when_configured(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """With proxy.keys set, calls without the right X-Proxy-Key get 401 and go nowhere."""
    proxy = await start(**{"proxy.keys": ["pk-1", "pk-2"]})
    url = f"{proxy.url}/v1/chat/completions"
    for headers in ({}, {"X-Proxy-Key": "wrong"}):
        async with http.post(url, data=chat(), headers=headers) as resp:
            assert resp.status == 401
    assert fake_provider.requests == []
    async with http.post(url, data=chat(), headers={"X-Proxy-Key": "pk-2"}) as resp:
        assert resp.status == 200


async def test_health_routes_answer_on_the_proxy_listener(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """/healthz and /readyz answer locally and never reach the upstream."""
    for path in ("/healthz", "/readyz"):
        async with http.get(proxy.url + path) as resp:
            assert resp.status == 200
    assert fake_provider.requests == []


async def test_upstream_cookies_are_not_shared_between_clients(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """The proxy keeps no cookie jar: a request carries only the cookies its client sent."""
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(),
                         headers={"Cookie": "a=1"}) as resp:  # fmt: skip
        assert resp.status == 200
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat()) as resp:
        assert resp.status == 200
    assert fake_provider.requests[0].headers["Cookie"] == "a=1"
    assert "Cookie" not in fake_provider.requests[1].headers


@pytest.mark.parametrize(
    "path", ["/openai/../anthropic/v1/models", "/v1/../../x", "/openai/v1/%2e%2E/models", "/v1/./m"]
)
async def test_dot_segments_are_refused_before_forwarding(
    path: str, proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A path cannot climb out of an upstream's base path: . and .. segments get 400."""
    url = URL(proxy.url + path, encoded=True)  # sent as written, not normalised by the client
    async with http.get(url) as resp:
        assert resp.status == 400
        assert "path" in orjson.loads(await resp.read())["error"]["message"]
    assert fake_provider.requests == []


async def test_invalid_upstream_response_is_502_not_500(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """An upstream that answers garbage instead of HTTP gets the client a clear 502."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        proxy = await start(**{"upstreams.openai.base_url": f"http://127.0.0.1:{port}"})
        async with http.get(f"{proxy.url}/v1/models") as resp:
            assert resp.status == 502
            error = orjson.loads(await resp.read())["error"]
        assert error["code"] == "bad_upstream_response"
    finally:
        server.close()


async def test_full_connection_pool_fails_after_connect_timeout(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """Waiting for a pooled connection is bounded by connect_timeout (502), never endless."""
    proxy = await start(**{"proxy.max_connections": 1, "upstreams.openai.connect_timeout": 0.3})
    hanging = asyncio.create_task(http.post(f"{proxy.url}/v1/chat/completions", data=chat("hang")))
    await fake_provider.wait_for_requests(1, timeout=5)  # the one pooled connection is taken
    try:
        async with asyncio.timeout(5):
            async with http.post(f"{proxy.url}/v1/chat/completions", data=chat()) as resp:
                assert resp.status == 502
                assert orjson.loads(await resp.read())["error"]["code"] == "connect_timeout"
    finally:
        hanging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hanging
