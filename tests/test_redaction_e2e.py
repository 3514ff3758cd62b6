"""Redaction and X-Capture through the real proxy: the upstream and the client see the original
text; Redis, the event stream, the spool and dataset rows hold the redacted text and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.core.errors import StoreUnavailable
from proxy.redaction import Redactor, redact_record
from proxy.writer import Writer
from tests.clients import call, rows_url
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import FakeProvider, reply_text
from tests.recording_helpers import wait_for_trace
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends

EMAIL = "jane.doe@example.com"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h"
IP_MODEL = "10.20.30.40"  # the fake answers "Hello from fake <model>!": an IP in the output
PROMPT = f"I am {EMAIL}, my key is {KEY}; why does it fail?"
ALL_KINDS = ["secret", "email", "phone", "credit_card", "iban", "ip"]


def chat_body(model: str = IP_MODEL, content: str = PROMPT) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": content}]})


async def post_chat(
    http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str, body: bytes, **headers: str
) -> tuple[int, bytes]:
    url = f"{proxy.url}/openai/v1/chat/completions"
    sent = {"Content-Type": "application/json", "X-Trace-Id": trace_id, **headers}
    async with http.post(url, data=body, headers=sent) as resp:
        return resp.status, await resp.read()


async def redis_dump(client: aioredis.Redis, prefix: str) -> bytes:
    """Every key and value under the prefix, hashes and streams included."""
    dump = b""
    async for key in client.scan_iter(match=f"{prefix}*"):
        kind = await client.type(key)
        dump += key
        if kind == b"hash":
            dump += b"".join(k + v for k, v in (await client.hgetall(key)).items())
        elif kind == b"stream":
            dump += repr(await client.xrange(key)).encode()
        elif kind == b"string":
            dump += await client.get(key) or b""
        elif kind == b"list":
            dump += b"".join(await client.lrange(key, 0, -1))
        elif kind == b"zset":
            dump += b"".join(await client.zrange(key, 0, -1))
    return dump


async def test_stored_text_is_redacted_but_forwarded_and_returned_text_is_not(
    start: StartProxy,
    fake_provider: FakeProvider,
    http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    """The upstream gets the exact prompt and the client the exact answer; the span in Redis,
    its event-stream entry and a dataset row hold tokens, and the span counts them per kind."""
    proxy = await start(**{"capture.redact.kinds": ALL_KINDS})
    body = chat_body()
    status, answer = await post_chat(http, proxy, "red-1", body)
    assert status == 200
    assert fake_provider.requests[-1].body == body
    assert orjson.loads(answer)["choices"][0]["message"]["content"] == reply_text(IP_MODEL)

    span = (await wait_for_trace(http, proxy.admin_url, "red-1"))["spans"][0]
    assert span["input"]["messages"][0]["content"] == (
        "I am [REDACTED:email], my key is [REDACTED:secret]; why does it fail?"
    )
    assert span["output"]["text"] == "Hello from fake [REDACTED:ip]!"
    assert span["redacted"] == {"email": 1, "secret": 1, "ip": 1}
    assert span["model"] == IP_MODEL  # model, usage and timing are never redacted
    assert span["usage"]["output_tokens"] == 5

    entries = await redis_client.xrange(f"{key_prefix}:events")
    (entry,) = [f for _, f in entries if f[b"trace_id"] == b"red-1"]
    streamed = orjson.loads(entry[b"data"])
    assert streamed["input"] == span["input"]
    assert streamed["redacted"] == span["redacted"]

    assert (await call(http, "POST", rows_url(proxy), {"trace_ids": ["red-1"]}))[0] == 200
    _, page = await call(http, "GET", rows_url(proxy))
    assert page["rows"][0]["input"]["messages"][0]["content"] == span["input"]["messages"][0][
        "content"
    ]
    dump = await redis_dump(redis_client, key_prefix)
    assert EMAIL.encode() not in dump
    assert KEY.encode() not in dump


async def test_feedback_comments_are_redacted_on_every_door(
    start: StartProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A comment sent as a header on a call, or to POST /feedback, is stored redacted."""
    proxy = await start(**{"capture.redact.kinds": ["email", "secret"]})
    comment = f"wrong, write to {EMAIL}"
    await post_chat(http, proxy, "red-fb", chat_body("gpt-4o-mini", "hello"),
                    **{"X-Feedback": "negative", "X-Feedback-Comment": comment})  # fmt: skip
    body = {"trace_id": "red-fb", "feedback_id": "second",
            "attributes": {"user_feedback": "negative", "user_feedback_comment": f"key {KEY}"}}
    async with http.post(f"{proxy.url}/feedback", json=body) as resp:
        assert resp.status == 200, await resp.text()

    async def trace() -> Any:
        async with http.get(f"{proxy.admin_url}/api/traces/red-fb") as resp:
            return await resp.json()

    done = await eventually(trace, until=lambda t: len(t.get("feedback", [])) == 2,
                            what="two feedback events")  # fmt: skip
    comments = sorted(e["attributes"]["user_feedback_comment"] for e in done["feedback"])
    assert comments == ["key [REDACTED:secret]", "wrong, write to [REDACTED:email]"]
    assert sorted(orjson.dumps(e["redacted"]) for e in done["feedback"]) == [
        b'{"email":1}', b'{"secret":1}'
    ]
    assert "[REDACTED:" in done["attributes"]["user_feedback_comment"]
    dump = await redis_dump(redis_client, key_prefix)
    assert EMAIL.encode() not in dump
    assert KEY.encode() not in dump


async def test_score_explanations_are_redacted(
    start: StartProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """An evaluator's explanation is stored redacted, with its counts; name and value stay."""
    proxy = await start(**{"capture.redact.kinds": ["email", "secret"]})
    await post_chat(http, proxy, "red-score", chat_body("gpt-4o-mini", "hello"))
    await wait_for_trace(http, proxy.admin_url, "red-score")
    body = {"name": "judge", "value": 0.1, "explanation": f"leaked {KEY} to {EMAIL}"}
    status, _ = await call(http, "POST", f"{proxy.admin_url}/api/traces/red-score/scores", body)
    assert status == 200
    (score,) = (await wait_for_trace(http, proxy.admin_url, "red-score"))["scores"]
    assert score["explanation"] == "leaked [REDACTED:secret] to [REDACTED:email]"
    assert score["redacted"] == {"secret": 1, "email": 1}
    assert (score["name"], score["value"]) == ("judge", 0.1)
    dump = await redis_dump(redis_client, key_prefix)
    assert EMAIL.encode() not in dump
    assert KEY.encode() not in dump


async def test_hash_mode_keeps_one_value_one_token_across_spans(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """With mode = hash, the same address in two calls is the same token."""
    proxy = await start(**{"capture.redact.kinds": ["email"], "capture.redact.mode": "hash",
                           "capture.redact.key": "test-key"})  # fmt: skip
    for n in range(2):
        await post_chat(http, proxy, "red-hash", chat_body("gpt-4o-mini", f"{n} {EMAIL}"))
    trace = await wait_for_trace(http, proxy.admin_url, "red-hash", spans=2)
    texts = sorted(s["input"]["messages"][0]["content"] for s in trace["spans"])
    assert texts[0][2:] == texts[1][2:]
    assert texts[0][2:].startswith("[email:")


async def test_redaction_off_stores_the_text_as_sent(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """kinds = [] and no patterns: nothing is replaced and spans carry no counts."""
    proxy = await start(**{"capture.redact.kinds": []})
    await post_chat(http, proxy, "red-off", chat_body("gpt-4o-mini"))
    span = (await wait_for_trace(http, proxy.admin_url, "red-off"))["spans"][0]
    assert span["input"]["messages"][0]["content"] == PROMPT
    assert "redacted" not in span


def spool_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.glob("spool-*.jsonl"))


async def test_the_spool_holds_only_redacted_records(tmp_path: Path) -> None:
    """While Redis is away, spooled records are already redacted on disk."""

    class Down:
        async def write_batch(self, records: Any) -> None:
            raise StoreUnavailable("down")

    redactor = Redactor(("email",))
    writer = Writer(Down(), tmp_path, flush_interval=0.0, retry_interval=60,
                    prepare=lambda record: redact_record(redactor, record))  # fmt: skip
    await writer.start()
    record: Any = {"id": "span:t:s", "kind": "span", "started_ms": 1, "trace": {"trace_id": "t"},
                   "span": {"span_id": "s", "input": EMAIL, "output": None}}  # fmt: skip
    writer.submit(record)
    await writer.wait_until(lambda: writer.spooled == 1, 5)
    await writer.close(1)
    spooled = spool_bytes(tmp_path)
    assert b"[REDACTED:email]" in spooled
    assert EMAIL.encode() not in spooled


# ----------------------------------------------------------------------------- X-Capture


async def test_capture_metadata_keeps_model_usage_and_timing_but_no_content(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """X-Capture: metadata stores the span without input or output, and is not forwarded."""
    body = chat_body("gpt-4o-mini", "private words")
    status, answer = await post_chat(http, proxy, "cap-meta", body, **{"X-Capture": " Metadata "})
    assert status == 200
    assert orjson.loads(answer)["choices"][0]["message"]["content"] == reply_text("gpt-4o-mini")
    received = fake_provider.requests[-1]
    assert received.body == body
    assert "x-capture" not in {name.lower() for name in received.headers}
    span = (await wait_for_trace(http, proxy.admin_url, "cap-meta"))["spans"][0]
    assert span["input"] is None
    assert span["output"] is None
    assert span["model"] == "gpt-4o-mini"
    assert span["usage"]["output_tokens"] == 5
    assert span["duration_ms"] > 0


async def test_capture_metadata_keeps_only_the_type_of_a_provider_error(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """The provider's error message may quote the input: with X-Capture: metadata the span
    keeps only the error's type."""
    body = chat_body("error-500", "private words")
    status, _ = await post_chat(http, proxy, "cap-err", body, **{"X-Capture": "metadata"})
    assert status == 500
    span = (await wait_for_trace(http, proxy.admin_url, "cap-err"))["spans"][0]
    assert span["error"] == "server_error"
    status, _ = await post_chat(http, proxy, "cap-err-full", body)
    span = (await wait_for_trace(http, proxy.admin_url, "cap-err-full"))["spans"][0]
    assert span["error"] == "server_error: The server had an error (fake)"


@pytest.mark.parametrize("value", ["full", "none", "", "metadata, full", "métadata"])
async def test_a_bad_capture_header_is_a_400_and_nothing_is_forwarded(
    proxy: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession, value: str
) -> None:
    """Any value but metadata: 400 naming X-Capture, the upstream sees nothing, no span."""
    before = len(fake_provider.requests)
    url = f"{proxy.url}/openai/v1/chat/completions"
    async with http.post(url, data=chat_body(), headers={"X-Capture": value.encode().decode(
            "latin-1"), "X-Trace-Id": "cap-bad", "X-Feedback": "negative"}) as resp:  # fmt: skip
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["message"].startswith("X-Capture:")
    assert error["code"] == "invalid_header"
    assert len(fake_provider.requests) == before
    async with http.get(f"{proxy.admin_url}/api/traces/cap-bad") as resp:
        assert resp.status == 404
