"""Implicit signals: ``regenerated`` (the same input again, in the trace or the session, within
the window) and ``stopped`` (the client closed a stream before its end), recorded on the span
they concern, counted in stats, filterable, on the event stream, never touching
user_feedback."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.config import ImplicitSettings, load_settings
from proxy.config.checks import ConfigError
from proxy.recording.implicit import input_hash
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.conftest import RunningProxy, StartProxy
from tests.factories import span_record
from tests.recording_helpers import wait_for_trace
from tests.test_redaction_e2e import redis_dump
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def chat(model: str = "gpt-4o-mini", stream: bool = False, content: str = "") -> bytes:
    messages = [{"role": "user", "content": content}] if content else MESSAGES
    return orjson.dumps({"model": model, "messages": messages, "stream": stream})


async def call(
    http: aiohttp.ClientSession, proxy: RunningProxy, headers: dict[str, str], **body: Any
) -> str:
    async with http.post(f"{proxy.url}/v1/chat/completions", data=chat(**body),
                         headers=headers) as resp:  # fmt: skip
        assert resp.status == 200
        await resp.read()
        return resp.headers["X-Span-Id"]


def signals(trace: dict[str, Any], span_id: str) -> list[dict[str, Any]]:
    (span,) = [s for s in trace["spans"] if s["span_id"] == span_id]
    return list(span["implicit"])


async def listed(http: aiohttp.ClientSession, proxy: RunningProxy, query: str) -> set[str]:
    async with http.get(f"{proxy.admin_url}/api/traces?{query}") as resp:
        return {t["trace_id"] for t in (await resp.json())["traces"]}


async def listed_eventually(
    http: aiohttp.ClientSession, proxy: RunningProxy, query: str, expected: set[str]
) -> None:
    """The index entry follows the span's own write (a second step of the writer): wait."""

    async def probe() -> set[str]:
        return await listed(http, proxy, query)

    await eventually(probe, until=lambda got: got == expected, what=f"{query} lists {expected}")


async def stats_eventually(
    http: aiohttp.ClientSession, proxy: RunningProxy, signal: str, count: int
) -> None:
    """Counts follow in the writer's second step too."""

    async def probe() -> int:
        return int((await stats_row(http, proxy))[signal])

    await eventually(probe, until=lambda got: got == count, what=f"{count} {signal} counted")


async def stats_row(http: aiohttp.ClientSession, proxy: RunningProxy) -> dict[str, Any]:
    async with http.get(f"{proxy.admin_url}/api/stats/feedback?bucket=hour") as resp:
        buckets = (await resp.json())["buckets"]
    return {
        "regenerated": sum(b["regenerated"] for b in buckets),
        "stopped": sum(b["stopped"] for b in buckets),
    }


# -- regenerated -----------------------------------------------------------------------------------


async def test_same_input_again_in_the_trace_marks_the_earlier_span(
    proxy: RunningProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """The second identical call of a trace records ``regenerated`` on the first span, by the
    second; a different input does not; the vote stays untouched; stats, filter and the
    event stream see it."""
    headers = {"X-Trace-Id": "regen-1"}
    first = await call(http, proxy, headers)
    await wait_for_trace(http, proxy.admin_url, "regen-1")
    second = await call(http, proxy, headers)
    await call(http, proxy, headers, content="Something else")
    trace = await wait_for_trace(http, proxy.admin_url, "regen-1", spans=3)
    (signal,) = signals(trace, first)
    assert signal["signal"] == "regenerated"
    assert signal["by_span_id"] == second
    assert signals(trace, second) == []
    assert "user_feedback" not in trace["attributes"]
    await listed_eventually(http, proxy, "implicit=regenerated", {"regen-1"})
    assert await listed(http, proxy, "implicit=stopped") == set()
    await stats_eventually(http, proxy, "regenerated", 1)

    async def published() -> list[tuple[str, str]]:
        entries = await redis_client.xrange(keys.events)
        return [(e[b"span_id"].decode(), orjson.loads(e[b"data"])["by_span_id"])
                for _, e in entries if e[b"type"] == b"implicit"]  # fmt: skip

    await eventually(published, until=lambda got: got == [(first, second)], what="the entry")


async def test_the_stored_input_hash_is_keyed(
    proxy: RunningProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """The input hash is kept even with X-Capture: metadata: a plain SHA-256 of the input would
    let anyone with Redis confirm a guessed prompt, so Redis holds a keyed one only."""
    headers = {"X-Trace-Id": "regen-key", "X-Session-Id": "s-key", "X-Capture": "metadata"}
    await call(http, proxy, headers)
    await call(http, proxy, headers)
    await wait_for_trace(http, proxy.admin_url, "regen-key", spans=2)
    plain = hashlib.sha256(orjson.dumps({"messages": MESSAGES}, option=orjson.OPT_SORT_KEYS))
    dump = await redis_dump(redis_client, keys.prefix)
    assert plain.hexdigest().encode() not in dump
    assert b"What is the capital" not in dump
    assert input_hash({"messages": MESSAGES}, b"a") != input_hash({"messages": MESSAGES}, b"b")


async def test_same_input_in_another_trace_of_the_session(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Without a shared trace, the session links them: the earlier trace's span is marked."""
    first = await call(http, proxy, {"X-Trace-Id": "sess-a", "X-Session-Id": "s-1"})
    await wait_for_trace(http, proxy.admin_url, "sess-a")
    second = await call(http, proxy, {"X-Trace-Id": "sess-b", "X-Session-Id": "s-1"})
    await call(http, proxy, {"X-Trace-Id": "sess-c", "X-Session-Id": "s-other"})

    async def marked() -> list[dict[str, Any]]:
        return signals(await wait_for_trace(http, proxy.admin_url, "sess-a"), first)

    (signal,) = await eventually(marked, what="the session's earlier span marked")
    assert signal["by_span_id"] == second
    await wait_for_trace(http, proxy.admin_url, "sess-c")
    await listed_eventually(http, proxy, "implicit=regenerated", {"sess-a"})
    await stats_eventually(http, proxy, "regenerated", 1)


def _with_input(record: dict[str, Any], session: str | None = None) -> dict[str, Any]:
    record["input_hash"] = input_hash({"messages": MESSAGES}, b"k")
    if session:
        record["trace"]["session_id"] = session
    return record


@pytest.mark.parametrize("shared", ["trace", "session"])
async def test_outside_the_window_is_no_regeneration(
    redis_client: aioredis.Redis, keys: Keys, shared: str
) -> None:
    """Past ``regenerate_window_seconds`` the same input is a new question; within it, one
    regeneration (the spans' start times decide, so the test needs no waiting)."""
    store = RedisStore(redis_client, keys, retention_days=30, regenerate_window_s=60)
    now = int(time.time() * 1000)
    t1, t2, t3 = ("w-1", "w-1", "w-1") if shared == "trace" else ("w-1", "w-2", "w-3")
    session = "s-w" if shared == "session" else None
    try:
        await store.write_batch([_with_input(span_record(t1, "1" * 16, now - 200_000), session)])
        await store.write_batch([_with_input(span_record(t2, "2" * 16, now - 100_000), session)])
        await store.write_batch([_with_input(span_record(t3, "3" * 16, now - 50_000), session)])
        marked: dict[str, list[dict[str, Any]]] = {}
        for trace_id in {t1, t2, t3}:
            trace = await store.get_trace(trace_id)
            assert trace is not None
            marked |= {span["span_id"]: span["implicit"] for span in trace["spans"]}
    finally:
        await store.close()
    assert marked["1" * 16] == []  # 100 s before the next call: outside the 60 s window
    assert [s["by_span_id"] for s in marked["2" * 16]] == ["3" * 16]  # 50 s: inside
    assert marked["3" * 16] == []


async def test_implicit_off_records_nothing(start: StartProxy, http: aiohttp.ClientSession) -> None:
    """``implicit.enabled = false``: the same input twice leaves the spans unmarked."""
    proxy = await start(**{"implicit.enabled": False})
    first = await call(http, proxy, {"X-Trace-Id": "off-1"})
    await wait_for_trace(http, proxy.admin_url, "off-1")
    await call(http, proxy, {"X-Trace-Id": "off-1"})
    trace = await wait_for_trace(http, proxy.admin_url, "off-1", spans=2)
    assert signals(trace, first) == []


# -- stopped -------------------------------------------------------------------------------------


async def test_client_stop_mid_stream_is_stopped_but_a_cut_or_a_finish_is_not(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A client closing a running stream records ``stopped``; a stream the upstream cut is an
    error, and a finished stream is neither."""
    resp = await http.post(
        f"{proxy.url}/v1/chat/completions",
        data=chat("hang-mid-stream", stream=True),
        headers={"X-Trace-Id": "stop-user"},
    )
    await resp.content.readany()
    stopped_span = resp.headers["X-Span-Id"]
    resp.close()  # the user pressed stop
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{proxy.url}/v1/chat/completions",
                             data=chat("cut-mid-stream", stream=True),
                             headers={"X-Trace-Id": "stop-cut"}) as cut:  # fmt: skip
            await cut.read()
    finished = await call(http, proxy, {"X-Trace-Id": "stop-done"}, stream=True)

    user = await wait_for_trace(http, proxy.admin_url, "stop-user")
    (signal,) = signals(user, stopped_span)
    assert signal["signal"] == "stopped"
    assert signal["by_span_id"] is None
    assert user["spans"][0]["error"] == "client_disconnected"
    broken = await wait_for_trace(http, proxy.admin_url, "stop-cut")
    assert broken["spans"][0]["error"] == "upstream_broken"
    assert broken["spans"][0]["implicit"] == []
    done = await wait_for_trace(http, proxy.admin_url, "stop-done")
    assert signals(done, finished) == []
    assert done["spans"][0]["error"] is None
    await listed_eventually(http, proxy, "implicit=stopped", {"stop-user"})
    assert "user_feedback" not in user["attributes"]
    await stats_eventually(http, proxy, "stopped", 1)


async def test_a_replayed_stopped_span_counts_once(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """The writer may send a batch twice (a replay): the stopped signal counts once."""
    record = span_record("stop-replay", "5" * 16)
    record["span"]["implicit"] = [{"signal": "stopped", "at": "2026-01-01T00:00:00.000Z",
                                   "by_span_id": None}]  # fmt: skip
    await store.write_batch([record])
    await store.write_batch([record])
    hour = record["started_ms"] - record["started_ms"] % 3_600_000
    counts = await redis_client.hgetall(keys.stats_counts(hour))
    assert counts[b"all\x1f\x1fstopped"] == b"1"
    assert counts[b"model\x1fgpt-4o-mini\x1fstopped"] == b"1"
    assert await redis_client.zscore(keys.index("implicit", "stopped"), "stop-replay") is not None


async def test_a_batch_replayed_after_its_second_step_failed_counts_and_publishes_once(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose span scripts landed but whose second step (counts, stream, indexes) failed
    goes to the spool and is replayed: the same-trace regeneration and the stop it carried are
    then counted once, listed, and reach the event stream."""
    now = int(time.time() * 1000)
    await store.write_batch([_with_input(span_record("cut-replay", "7" * 16, now - 2_000))])
    again = _with_input(span_record("cut-replay", "8" * 16, now - 1_000))
    stop = span_record("cut-replay", "9" * 16, now)
    stop["span"]["implicit"] = [{"signal": "stopped", "at": "2026-01-01T00:00:00.000Z",
                                 "by_span_id": None}]  # fmt: skip
    real = store._score_indexes

    async def fail(*args: Any) -> None:
        raise StoreUnavailable("second step cut")

    monkeypatch.setattr(store, "_score_indexes", fail)
    with pytest.raises(StoreUnavailable):
        await store.write_batch([again, stop])
    monkeypatch.setattr(store, "_score_indexes", real)
    await store.write_batch([again, stop])
    await store.write_batch([again, stop])  # a second replay counts nothing more

    hour = (now - 2_000) - (now - 2_000) % 3_600_000
    counts = await redis_client.hgetall(keys.stats_counts(hour))
    assert counts[b"all\x1f\x1fregenerated"] == b"1"
    assert counts[b"all\x1f\x1fstopped"] == b"1"
    for signal in ("regenerated", "stopped"):
        assert await redis_client.zscore(keys.index("implicit", signal), "cut-replay") is not None
    published = {(e[b"span_id"].decode(), orjson.loads(e[b"data"])["signal"])
                 for _, e in await redis_client.xrange(keys.events)
                 if e[b"type"] == b"implicit"}  # fmt: skip
    assert published == {("7" * 16, "regenerated"), ("9" * 16, "stopped")}


@pytest.mark.parametrize("window", ["0", "2592001", "ten"])
def test_bad_regenerate_window_stops_start_up(window: str) -> None:
    """The window must be 1 s to 30 days; anything else names the key."""
    env = {"FEEDBACK_PROXY_IMPLICIT__REGENERATE_WINDOW_SECONDS": window}
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert "implicit.regenerate_window_seconds" in str(caught.value)


def test_implicit_settings_default_and_override() -> None:
    """On by default with a 600 s window; both keys can be set from the environment."""
    assert load_settings(env={}).implicit == ImplicitSettings(True, 600)
    env = {"FEEDBACK_PROXY_IMPLICIT__ENABLED": "false",
           "FEEDBACK_PROXY_IMPLICIT__REGENERATE_WINDOW_SECONDS": "30"}  # fmt: skip
    assert load_settings(env=env).implicit == ImplicitSettings(False, 30)


def test_observe_marks_a_client_stop_of_a_stream_only() -> None:
    """Pure: ``stopped`` needs both a client that went away and a stream; the input hash does
    not depend on key order, and there is none without an input."""
    from proxy.recording.implicit import observe

    def observed(error: str | None, streaming: bool) -> dict[str, Any]:
        record = span_record("pure", "6" * 16)
        observe(record, error, streaming, {"messages": MESSAGES}, 1_800_000_000_000, b"k")  # type: ignore[arg-type]
        return record

    assert observed("client_disconnected", True)["span"]["implicit"][0]["signal"] == "stopped"
    assert "implicit" not in observed("client_disconnected", False)["span"]
    assert "implicit" not in observed("upstream_broken", True)["span"]
    assert "implicit" not in observed(None, True)["span"]
    assert observed(None, False)["input_hash"] == input_hash({"messages": MESSAGES}, b"k")
    one = input_hash({"messages": [{"role": "user", "content": "x"}], "tools": []}, b"k")
    assert one == input_hash({"tools": [], "messages": [{"content": "x", "role": "user"}]}, b"k")
    assert one != input_hash({"messages": [{"role": "user", "content": "y"}], "tools": []}, b"k")
    assert input_hash(None, b"k") is None
    assert input_hash({}, b"k") is None
