"""Issue 11: requests broken at the HTTP layer (malformed header bytes, odd ``Expect``, paths
that climb) get a clear 400 naming the problem, one log line, and never a credential echoed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import FakeProvider
from tests.test_cli import serving

SECRET = "sk-proj-SECRETVALUE0123"
# Header lines aiohttp's parser refuses: a control character inside a credential's value.
MALFORMED = [
    f"Authorization: Bearer {SECRET}\x01x".encode(),
    f"x-api-key: {SECRET}\x7f".encode(),
]


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def raw_request(url: str, head: bytes, body: bytes = b"{}") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, CRLF-separated, no final blank line) as is."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    writer.write(
        head + b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\n\r\n" + body
    )  # fmt: skip
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def post_with(line: bytes) -> bytes:
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + line


async def test_malformed_credential_header_logs_one_line_without_the_value(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    """The real ``serve``: each refused request is one JSON log line with no header value."""
    async with serving(tmp_path, fake_provider.base_url) as served:
        await served.read_line()
        await served.wait_healthy()
        statuses = [(await raw_request(served.url, post_with(line)))[0] for line in MALFORMED]
        code, stdout, stderr = await served.stop()
    assert statuses == [400, 400]
    assert code == 0, stderr
    assert SECRET not in stdout
    assert SECRET not in stderr
    assert "Traceback" not in stderr, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    bad = [e for e in events if e["event"] == "bad http request"]
    assert len(bad) == 2, stdout
    assert all(e["status"] == 400 and e["level"] == "warning" for e in bad)
    assert "Authorization" in bad[0]["reason"]
    assert fake_provider.requests == []


@pytest.mark.parametrize("line", MALFORMED)
async def test_malformed_header_answer_names_the_header_never_the_value(
    line: bytes, proxy: RunningProxy, fake_provider: FakeProvider
) -> None:
    """The client's 400 is the proxy's JSON error, naming the header; its value is not echoed."""
    status, body = await raw_request(proxy.url, post_with(line))
    assert status == 400
    assert SECRET.encode() not in body
    error = orjson.loads(body)["error"]
    assert error["code"] == "bad_http_request"
    assert line.split(b":")[0].decode() in error["message"]
    assert fake_provider.requests == []


# ----------------------------------------------------------------------------- Expect


@pytest.mark.parametrize("path", [b"/v1/chat/completions", b"/feedback", b"/healthz"])
async def test_non_utf8_expect_is_400_naming_the_header(
    path: bytes, proxy: RunningProxy, fake_provider: FakeProvider
) -> None:
    """``Expect: \\xc0\\xaf`` was a 500 (aiohttp's handler failed to echo it): now a 400."""
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nExpect: \xc0\xaf"
    status, body = await raw_request(proxy.url, head)
    assert status == 400, body
    error = orjson.loads(body)["error"]
    assert error["message"] == "Expect: not valid UTF-8"
    assert fake_provider.requests == []


async def test_unknown_expect_is_417_without_echoing_the_value(
    proxy: RunningProxy, fake_provider: FakeProvider
) -> None:
    """Only 100-continue is an expectation; another value is refused, not repeated back."""
    head = post_with(f"Expect: {SECRET}".encode())
    status, body = await raw_request(proxy.url, head)
    assert status == 417, body
    assert SECRET.encode() not in body
    error = orjson.loads(body)["error"]
    assert error["code"] == "unsupported_expectation"
    assert error["message"] == "Expect: only 100-continue is supported"
    assert fake_provider.requests == []


async def test_expect_100_continue_still_gets_100_then_the_answer(
    proxy: RunningProxy, fake_provider: FakeProvider
) -> None:
    """The one defined expectation keeps working: 100 Continue first, then the upstream's 200.
    The proxy answered the expectation itself, so the upstream is not asked to (a provider
    that never sends 100 would otherwise stall the upload)."""
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    reader, writer = await asyncio.open_connection(*host_port(proxy.url))
    writer.write(
        post_with(b"Expect: 100-Continue") + b"\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n"
    )  # fmt: skip
    interim = await reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100"), interim
    writer.write(body)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert fake_provider.requests[-1].body == body
    assert "Expect" not in fake_provider.requests[-1].headers


# ----------------------------------------------------------------------------- paths

CLIMBING = [
    b"/v1/..%2f..%2fadmin",
    b"/v1/..%2F..%2Fadmin",
    b"/v1/..\\..\\admin",
    b"/v1/..%5cadmin",
    b"/v1/..;/admin",
    b"/v1/.;x/admin",
    b"/v1/%2e%2e/admin",
    b"/v1/%2E%2e/admin",
    b"/v1/.%2E/admin",
    b"/v1/%252e%252e/admin",
    b"/v1/%25252e%25252e%25252fadmin",
    b"/openai/v1/..%252fadmin",
    b"/v1/%2525252e%2525252e/admin",
]


@pytest.mark.parametrize("path", CLIMBING)
async def test_encoded_dot_segments_are_refused_before_anything_is_forwarded(
    path: bytes, start: StartProxy, fake_provider: FakeProvider
) -> None:
    """An upstream that decodes %2f, %252e, \\ or ;params could be walked out of its prefix."""
    proxy = await start(**{"upstreams.openai.base_url": f"{fake_provider.base_url}/prefix"})
    status, body = await raw_request(proxy.url, b"POST " + path + b" HTTP/1.1\r\nHost: x")
    assert status == 400, body
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_path"
    assert error["message"].startswith("path: must not contain . or .. segments")
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        (b"/v1/models/org%2Fname", "/prefix/v1/models/org/name"),
        (b"/v1/files/a..b/.hidden", "/prefix/v1/files/a..b/.hidden"),
        (b"/v1/files/100%25", "/prefix/v1/files/100%"),
    ],
)
async def test_paths_that_only_look_odd_are_still_forwarded_unchanged(
    path: bytes, seen: str, start: StartProxy, fake_provider: FakeProvider
) -> None:
    """Encoded slashes, dots inside names and %25 alone climb nowhere: they are forwarded.

    (The fake provider records the decoded path.)"""
    proxy = await start(**{"upstreams.openai.base_url": f"{fake_provider.base_url}/prefix"})
    status, _ = await raw_request(proxy.url, b"GET " + path + b" HTTP/1.1\r\nHost: x")
    assert status != 400
    assert fake_provider.requests[-1].path == seen
