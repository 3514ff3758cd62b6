"""GET /metrics: what a Prometheus scrape of the admin listener shows after real calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics.calls import MAX_MODEL_CHARS, CallMetrics, Distribution, ModelLabels
from proxy.metrics.feedback import FeedbackCounts
from proxy.metrics.prometheus import merge, render
from proxy.metrics.workers import mark_dead, publish, read_others
from proxy.store.embedded import free_port
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import COMPLETION_TOKENS, FakeProvider
from tests.recording_helpers import wait_for_trace, wait_healthy
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MODEL = "gpt-4o-mini"
PROMPT = "Hi there"  # the fake provider counts 2 input tokens
TOKEN = "adm-metrics"
REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers


def parse(text: str) -> Samples:
    """Every sample of a text exposition, by (sample name, label set)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample with exactly these labels, or None."""
    return samples.get((name, frozenset(labels.items())))


def names(samples: Samples, name: str) -> set[frozenset[tuple[str, str]]]:
    """The label sets of every sample called ``name``."""
    return {labels for sample_name, labels in samples if sample_name == name}


def label_sets(*labels: dict[str, str]) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(one.items()) for one in labels}


async def scrape(http: aiohttp.ClientSession, admin_url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{admin_url}/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(await resp.text())


async def scrape_until(
    http: aiohttp.ClientSession,
    admin_url: str,
    done: Callable[[Samples], bool],
    timeout: float = 5.0,
) -> Samples:
    """Scrape until ``done`` holds: a call is counted just after its last byte is sent."""
    return await eventually(
        lambda: scrape(http, admin_url), until=done, timeout=timeout, what="the awaited metrics"
    )


def chat(model: str = MODEL, stream: bool = False) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


async def call(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> int:
    """One call, read to the end; its status (a broken stream raises ClientPayloadError)."""
    async with http.post(url, data=body, headers=headers or {}) as resp:
        await resp.read()
        return resp.status


def requests_total(samples: Samples) -> float:
    return sum(
        value for (name, _), value in samples.items() if name == "feedback_proxy_requests_total"
    )


# ----------------------------------------------------------------------------- calls


async def test_calls_are_counted_by_upstream_model_and_status(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Two JSON calls, one stream and one upstream 500: counts, latency, TTFT and tokens."""
    url = f"{proxy.url}/v1/chat/completions"
    assert await call(http, url, chat()) == 200
    assert await call(http, url, chat()) == 200
    assert await call(http, url, chat(stream=True)) == 200
    assert await call(http, url, chat("error-500")) == 500

    samples = await scrape_until(http, proxy.admin_url, lambda s: requests_total(s) == 4)
    ok = {"upstream": "openai", "model": MODEL, "status": "200"}
    assert names(samples, "feedback_proxy_requests_total") == label_sets(
        {"upstream": "openai", "model": "error-500", "status": "500"}, ok
    )
    assert get(samples, "feedback_proxy_requests_total", **ok) == 3
    assert get(samples, "feedback_proxy_request_duration_seconds_count", **ok) == 3
    assert get(samples, "feedback_proxy_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    assert (get(samples, "feedback_proxy_request_duration_seconds_sum", **ok) or 0) > 0
    streamed = {"upstream": "openai", "model": MODEL}
    assert names(samples, "feedback_proxy_time_to_first_token_seconds_count") == label_sets(
        streamed
    )
    assert get(samples, "feedback_proxy_time_to_first_token_seconds_count", **streamed) == 1
    assert get(samples, "feedback_proxy_tokens_total", **streamed, kind="input") == 3 * 2
    assert get(samples, "feedback_proxy_tokens_total", **streamed, kind="output") == (
        3 * COMPLETION_TOKENS
    )
    assert names(samples, "feedback_proxy_upstream_errors_total") == set()  # a 500 is an answer
    assert get(samples, "feedback_proxy_worker_processes") == 1


async def test_unrouted_calls_get_no_client_chosen_labels(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """An unknown upstream (404) or a bad trace header (400) counts with upstream "" and no
    model: a client cannot make up label values."""
    assert await call(http, f"{proxy.url}/made-up-{os.getpid()}/v1/x", chat()) == 404
    bad_trace = {"X-Trace-Id": "not valid!"}
    assert await call(http, f"{proxy.url}/v1/chat/completions", chat(), bad_trace) == 400
    samples = await scrape_until(http, proxy.admin_url, lambda s: requests_total(s) == 2)
    assert names(samples, "feedback_proxy_requests_total") == label_sets(
        {"upstream": "", "model": "", "status": "400"},
        {"upstream": "", "model": "", "status": "404"},
    )


async def test_with_recording_off_calls_count_without_model(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """capture.record = false parses nothing: calls still count, with model "" and no tokens."""
    proxy = await start(**{"capture.record": False})
    assert await call(http, f"{proxy.url}/v1/chat/completions", chat()) == 200
    samples = await scrape_until(http, proxy.admin_url, lambda s: requests_total(s) == 1)
    labels = {"upstream": "openai", "model": "", "status": "200"}
    assert get(samples, "feedback_proxy_requests_total", **labels) == 1
    assert names(samples, "feedback_proxy_tokens_total") == set()


# ----------------------------------------------------------------------------- upstream errors


@contextlib.asynccontextmanager
async def garbage_upstream() -> AsyncIterator[str]:
    """An upstream that answers anything with bytes that are not HTTP."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_upstream_errors_are_counted_by_kind(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Invalid response, read timeouts (before and after the answer started), a stream cut
    mid-way, and a refused connection."""
    async with garbage_upstream() as garbage:
        proxy = await start(
            **{"upstreams.anthropic.base_url": garbage, "upstreams.openai.read_timeout": 0.3}
        )
        url = f"{proxy.url}/v1/chat/completions"
        async with http.get(f"{proxy.url}/anthropic/v1/models") as resp:  # no body to send
            assert resp.status == 502
    assert await call(http, url, chat("hang")) == 504
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(http, url, chat("cut-mid-stream", stream=True))
    with pytest.raises(aiohttp.ClientPayloadError):  # silent past read_timeout, mid-stream
        await call(http, url, chat("hang-mid-stream", stream=True))
    down = await start(**{"upstreams.openai.base_url": f"http://127.0.0.1:{free_port()}"})
    assert await call(http, f"{down.url}/v1/chat/completions", chat()) == 502

    samples = await scrape_until(http, proxy.admin_url, lambda s: requests_total(s) == 4)
    errors = "feedback_proxy_upstream_errors_total"
    assert names(samples, errors) == label_sets(
        {"upstream": "anthropic", "kind": "invalid_response"},
        {"upstream": "openai", "kind": "mid_stream_break"},
        {"upstream": "openai", "kind": "read_timeout"},
    )
    assert get(samples, errors, upstream="anthropic", kind="invalid_response") == 1
    assert get(samples, errors, upstream="openai", kind="mid_stream_break") == 1
    assert get(samples, errors, upstream="openai", kind="read_timeout") == 2  # before and mid
    assert get(samples, "feedback_proxy_requests_total",
               upstream="anthropic", model="", status="502") == 1  # fmt: skip
    assert get(samples, "feedback_proxy_requests_total",
               upstream="openai", model="hang", status="504") == 1  # fmt: skip
    assert get(samples, "feedback_proxy_requests_total",
               upstream="openai", model="cut-mid-stream", status="200") == 1  # fmt: skip
    refused = await scrape_until(http, down.admin_url, lambda s: requests_total(s) == 1)
    assert names(refused, "feedback_proxy_upstream_errors_total") == label_sets(
        {"upstream": "openai", "kind": "connect"}
    )


# ----------------------------------------------------------------------------- feedback


def feedback_value(samples: Samples, metric: str, label: str, value: str) -> float | None:
    return get(samples, f"feedback_proxy_feedback_{metric}", **{label: value, "model": MODEL})


async def test_feedback_is_counted_by_value_rating_category_reason_and_model(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Feedback on a model call counts under that call's model; the same X-Feedback-Id changed
    through POST /feedback moves the counts, under the trace's model."""
    trace = f"metrics-fb-{os.getpid()}-{time.monotonic_ns()}"
    url = f"{proxy.url}/v1/chat/completions"
    assert await call(http, url, chat(), {"X-Trace-Id": trace}) == 200
    await wait_for_trace(http, proxy.admin_url, trace)
    vote = {
        "X-Trace-Id": trace,
        "X-Feedback": "negative",
        "X-Feedback-Rating": "2",
        "X-Feedback-Category": "incorrect",
        "X-Feedback-Reason": "hallucination",
        "X-Feedback-Id": "vote-1",
    }
    assert await call(http, url, chat(), vote) == 200
    samples = await scrape(http, proxy.admin_url)  # the merge is done before the answer
    assert feedback_value(samples, "votes", "value", "negative") == 1
    assert feedback_value(samples, "ratings", "rating", "2") == 1
    assert feedback_value(samples, "categories", "category", "incorrect") == 1
    assert feedback_value(samples, "reasons", "reason", "hallucination") == 1

    changed = {"X-Trace-Id": trace, "X-Feedback": "positive", "X-Feedback-Id": "vote-1"}
    async with http.post(f"{proxy.url}/feedback", headers=changed) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "applied"
    samples = await scrape(http, proxy.admin_url)
    assert feedback_value(samples, "votes", "value", "negative") == 0
    assert feedback_value(samples, "votes", "value", "positive") == 1
    assert feedback_value(samples, "ratings", "rating", "2") == 0
    assert feedback_value(samples, "categories", "category", "incorrect") == 0
    assert feedback_value(samples, "reasons", "reason", "hallucination") == 0


async def test_feedback_for_a_trace_without_spans_has_no_model(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """POST /feedback for a trace not recorded (yet) counts with model ""."""
    headers = {"X-Trace-Id": f"metrics-none-{time.monotonic_ns()}", "X-Feedback-Rating": "3.5"}
    async with http.post(f"{proxy.url}/feedback", headers=headers) as resp:
        assert resp.status == 200
    samples = await scrape(http, proxy.admin_url)
    assert get(samples, "feedback_proxy_feedback_ratings", rating="3.5", model="") == 1


# ----------------------------------------------------------------------------- writer


async def test_writer_numbers_are_read_at_scrape_time(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """With Redis up every span is written: nothing queued, spooled or dropped."""
    for _ in range(3):
        assert await call(http, f"{proxy.url}/v1/chat/completions", chat()) == 200
    samples = await scrape_until(
        http, proxy.admin_url, lambda s: get(s, "feedback_proxy_records_written_total") == 3
    )
    assert get(samples, "feedback_proxy_records_written_total") == 3
    assert get(samples, "feedback_proxy_record_queue_depth") == 0
    assert get(samples, "feedback_proxy_spool_bytes") == 0
    assert get(samples, "feedback_proxy_records_spooled_total") == 0
    assert get(samples, "feedback_proxy_records_dropped_total") == 0


async def test_spool_shows_while_redis_is_down(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Redis unreachable: the spans wait in the spool, and the scrape says how much."""
    proxy = await start(**{"redis.url": f"redis://127.0.0.1:{free_port()}/0"})
    for _ in range(2):
        assert await call(http, f"{proxy.url}/v1/chat/completions", chat()) == 200
    samples = await scrape_until(
        http, proxy.admin_url, lambda s: get(s, "feedback_proxy_records_spooled_total") == 2
    )
    assert get(samples, "feedback_proxy_records_spooled_total") == 2
    assert (get(samples, "feedback_proxy_spool_bytes") or 0) > 0
    assert get(samples, "feedback_proxy_records_written_total") == 0
    assert get(samples, "feedback_proxy_records_dropped_total") == 0


# ----------------------------------------------------------------------------- auth


async def test_metrics_needs_the_admin_token_once_one_is_set(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Like every admin route but /healthz: 401 without the bearer token, 200 with it."""
    proxy = await start(**{"admin.token": TOKEN})
    async with http.get(f"{proxy.admin_url}/metrics") as resp:
        assert resp.status == 401
    samples = await scrape(http, proxy.admin_url, token=TOKEN)
    assert get(samples, "feedback_proxy_worker_processes") == 1


# ----------------------------------------------------------------------------- pure parts


def test_metrics_core_is_pure() -> None:
    """The hot-path counters and the rendering import neither aiohttp nor redis."""
    code = (
        "import sys, proxy.metrics.calls, proxy.metrics.prometheus\n"
        "assert not {'aiohttp', 'redis'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_model_labels_are_bounded() -> None:
    """The first N distinct models keep their names; later and over-long ones are "other"."""
    label = ModelLabels(limit=2)
    assert [label("a"), label("b"), label("c"), label("a"), label(None)] == [
        "a", "b", "other", "a", "",
    ]  # fmt: skip
    assert ModelLabels()("m" * (MAX_MODEL_CHARS + 1)) == "other"


def test_histogram_buckets_are_inclusive_upper_bounds() -> None:
    """A value equal to a bound lands in that bucket ("le"); past the last one, in +Inf."""
    distribution = Distribution((0.1, 1.0))
    for value in (0.1, 0.5, 1.0, 7.0):
        distribution.observe(value)
    assert distribution.numbers() == [4, 8.6, 1, 2, 1]


def test_ratings_are_labelled_to_the_nearest_half_point() -> None:
    """Ratings are any number from 1 to 5; their labels are at most nine values."""
    counts = FeedbackCounts()
    for rating in (4, 3.25, 1.2, 4.74, 5):
        counts.add({"attributes": {"user_feedback_rating": rating}}, None, "m")
    assert {value: n for (_, value, _), n in counts.counts.items()} == {
        "4": 1, "3.5": 1, "1": 1, "4.5": 1, "5": 1,
    }  # fmt: skip


def _worker(requests: int, queue: int, live: bool = True) -> dict[str, object]:
    metrics = CallMetrics()
    for _ in range(requests):
        metrics.observe(
            upstream="openai",
            model=MODEL,
            status=200,
            duration=0.2,
            ttft=None,
            usage=None,
            error=None,
        )
    families = {**metrics.snapshot(), "writer": [[[], [queue, 10 * queue]]]}
    return {"pid": 0, "live": live, "families": families}


def test_merge_sums_counters_of_all_workers_and_gauges_of_live_ones() -> None:
    """A dead worker's calls still count; its queue and spool no longer do."""
    merged, live = merge([_worker(2, 5), _worker(3, 7), _worker(4, 100, live=False)])
    samples = parse(render(merged, live).decode())
    labels = {"upstream": "openai", "model": MODEL, "status": "200"}
    assert get(samples, "feedback_proxy_requests_total", **labels) == 9
    assert get(samples, "feedback_proxy_request_duration_seconds_bucket", **labels, le="0.25") == 9
    assert get(samples, "feedback_proxy_record_queue_depth") == 12
    assert get(samples, "feedback_proxy_spool_bytes") == 120
    assert get(samples, "feedback_proxy_worker_processes") == 2


def test_published_snapshots_are_read_back_and_marked_dead(tmp_path: Path) -> None:
    """Each worker's file is read by the others; the parent marks an exited worker dead."""
    for pid in (11, 12):
        publish(tmp_path, {**_worker(1, 3), "pid": pid})
    others = read_others(tmp_path, 11)
    assert [(s["pid"], s["live"]) for s in others] == [(12, True)]
    mark_dead(tmp_path, 12)
    mark_dead(tmp_path, 99)  # never published: nothing to do
    assert [(s["pid"], s["live"]) for s in read_others(tmp_path, 11)] == [(12, False)]


async def test_local_snapshot_of_a_running_proxy(proxy: RunningProxy) -> None:
    """The snapshot a worker publishes holds its writer's numbers and its feedback counts."""
    snapshot = proxy.listeners.services.metrics_snapshot()
    assert snapshot["live"] is True
    assert snapshot["families"]["writer"] == [[[], [0, 0]]]
    assert snapshot["families"]["feedback"] == []


# ----------------------------------------------------------------------------- workers


async def test_two_workers_scrape_the_sum_whichever_answers(
    tmp_path: Path,
    fake_provider: FakeProvider,
    redis_server: str,
    key_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    """`serve --workers 2`: N calls spread over both workers; every scrape, on whichever
    worker, counts N; the shared metrics directory is gone after the exit."""
    port, admin_port = free_port(), free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "TMPDIR": str(temp),
        "FEEDBACK_PROXY_REDIS__KEY_PREFIX": key_prefix,
        "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(tmp_path / "spool"),
        "FEEDBACK_PROXY_LOG__LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--workers", "2", "--redis", redis_server,
        "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
        "--upstream", fake_provider.base_url,
        cwd=tmp_path, env=env, start_new_session=True,  # its own process group: see finally
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_healthy(http, f"http://127.0.0.1:{port}", 15, process)
        await _calls_on_fresh_connections(f"http://127.0.0.1:{port}", 20)
        admin = f"http://127.0.0.1:{admin_port}"
        await scrape_until(
            http,
            admin,
            lambda s: get(s, "feedback_proxy_worker_processes") == 2 and requests_total(s) == 20,
        )

        async def eight_fresh_scrapes() -> list[tuple[float, float]]:
            """Fresh connections: the kernel picks a worker for each."""
            seen = []
            for _ in range(8):
                connector = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=connector) as s:
                    samples = await scrape(s, admin)
                seen.append(
                    (requests_total(samples), get(samples, "feedback_proxy_worker_processes"))
                )
            return seen

        # A worker adds its peer's numbers as last published (once a second), so the other
        # worker may lag by one publication; within a few, every answer holds the sum.
        await eventually(
            eight_fresh_scrapes,
            until=lambda seen: all(pair == (20, 2) for pair in seen),
            what="every worker answering the sum of both",
        )
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
        assert process.returncode == 0, err.decode()[-2000:]
        assert list(temp.iterdir()) == []
    finally:
        # The whole group: a worker left alive would hold stderr open, and wait() (which
        # waits for the pipes too) would hang instead of letting the failure be reported.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 15)


async def _calls_on_fresh_connections(url: str, count: int) -> None:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(count):
            assert await call(session, f"{url}/v1/chat/completions", chat()) == 200
