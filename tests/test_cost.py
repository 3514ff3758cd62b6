"""Cost: every span priced with genai-prices, sums on the trace, cost filters, stats and metrics.

Prices are checked against ``genai_prices.calc_price`` itself, given the usage the fake provider
reported (in genai-prices' terms: its ``input_tokens`` include cached tokens).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import genai_prices
import pytest
from genai_prices import Usage, calc_price

from proxy.recording.price_cache import load_price_table
from proxy.recording.price_table import PriceTable
from proxy.recording.pricing import MAX_CACHED, SpanPricer
from proxy.store.query_plan import TraceFilter, driver_indexes
from proxy.store.redis_store import RedisStore
from proxy.store.trace_query import TraceQuery
from tests.conftest import RunningProxy
from tests.factories import span_record
from tests.fake_provider import COMPLETION_TOKENS, prompt_tokens
from tests.recording_helpers import wait_for_trace
from tests.test_cli import minimal_env, run_cli
from tests.test_cli_admin import cli
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-latest"


def reference(model: str, provider: str, **usage: int) -> float:
    """genai-prices' own price of this usage."""
    return float(calc_price(Usage(**usage), model, provider_id=provider).total_price)


def chat_body(words: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def messages_body(words: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
    }
    if stream:
        body["stream"] = True
    return body


async def call(
    http: aiohttp.ClientSession,
    proxy: RunningProxy,
    path: str,
    body: dict[str, Any],
    trace_id: str,
    cache: tuple[int, int] | None = None,
) -> None:
    headers = {"X-Trace-Id": trace_id, "Content-Type": "application/json"}
    if cache is not None:
        headers["x-fake-cache"] = f"{cache[0]},{cache[1]}"
    async with http.post(f"{proxy.url}{path}", data=json.dumps(body), headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()


# ----------------------------------------------------------------------------- through the proxy


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_openai_span_cost_equals_genai_prices_with_cached_tokens(
    proxy: RunningProxy, http: aiohttp.ClientSession, stream: bool
) -> None:
    """A chat call whose prompt was partly cached costs what genai-prices says for that usage;
    the trace and its list summary carry the same cost and the total tokens."""
    trace_id = f"cost-openai-{stream}"
    body = chat_body(40, stream)
    await call(http, proxy, "/v1/chat/completions", body, trace_id, cache=(16, 0))
    trace = await wait_for_trace(http, proxy.admin_url, trace_id)
    span = trace["spans"][0]
    prompt = prompt_tokens(body) + 16
    assert span["usage"]["cache_read_tokens"] == 16
    expected = reference(
        OPENAI_MODEL, "openai", input_tokens=prompt, cache_read_tokens=16,
        output_tokens=COMPLETION_TOKENS,
    )  # fmt: skip
    assert span["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert trace["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert trace["total_tokens"] == prompt + COMPLETION_TOKENS

    async def listed_traces() -> list[dict[str, Any]]:
        async with http.get(f"{proxy.admin_url}/api/traces") as resp:
            return [t for t in (await resp.json())["traces"] if t["trace_id"] == trace_id]

    # the index entry follows the trace record in a second round trip: wait for it
    listed = (await eventually(listed_traces, until=bool, what="the trace listed"))[0]
    assert listed["cost_usd"] == trace["cost_usd"]
    assert listed["total_tokens"] == trace["total_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_anthropic_span_cost_counts_cache_reads_and_writes(
    proxy: RunningProxy, http: aiohttp.ClientSession, stream: bool
) -> None:
    """Anthropic reports cache reads and writes beside its input tokens: all three are priced,
    each at its own rate, as genai-prices prices them."""
    trace_id = f"cost-anthropic-{stream}"
    body = messages_body(30, stream)
    await call(http, proxy, "/v1/messages", body, trace_id, cache=(200, 50))
    span = (await wait_for_trace(http, proxy.admin_url, trace_id))["spans"][0]
    assert span["usage"]["cache_read_tokens"] == 200
    assert span["usage"]["cache_write_tokens"] == 50
    assert span["usage"]["input_tokens"] == prompt_tokens(body)
    expected = reference(
        ANTHROPIC_MODEL, "anthropic", input_tokens=prompt_tokens(body) + 250,
        cache_read_tokens=200, cache_write_tokens=50, output_tokens=COMPLETION_TOKENS,
    )  # fmt: skip
    assert span["cost_usd"] == pytest.approx(expected, rel=1e-9)
    uncached = reference(
        ANTHROPIC_MODEL, "anthropic", input_tokens=prompt_tokens(body) + 250,
        output_tokens=COMPLETION_TOKENS,
    )  # fmt: skip
    assert span["cost_usd"] != pytest.approx(uncached, rel=1e-6)  # the cache rates mattered


async def test_unknown_model_and_unknown_usage_cost_null_never_zero(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A model the price data does not know, and a stream without usage, cost null; a trace of
    only such spans has cost null, while its tokens are still summed where known."""
    unknown = {**chat_body(5, False), "model": "mystery-model-9000"}
    await call(http, proxy, "/v1/chat/completions", unknown, "cost-unknown")
    no_usage = {**chat_body(5, False), "stream": True}  # no include_usage: no usage at all
    await call(http, proxy, "/v1/chat/completions", no_usage, "cost-no-usage")
    trace = await wait_for_trace(http, proxy.admin_url, "cost-unknown")
    assert trace["spans"][0]["cost_usd"] is None
    assert trace["cost_usd"] is None
    assert trace["total_tokens"] == prompt_tokens(unknown) + COMPLETION_TOKENS
    trace = await wait_for_trace(http, proxy.admin_url, "cost-no-usage")
    assert trace["spans"][0]["usage"] is None
    assert trace["spans"][0]["cost_usd"] is None
    assert trace["cost_usd"] is None
    assert trace["total_tokens"] is None


async def test_trace_cost_is_the_sum_of_known_span_costs(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Three calls of one trace, one of them unpriceable: the trace's cost is the sum of the
    two known ones."""
    trace_id = "cost-sum"
    first, second = chat_body(10, False), messages_body(20, True)
    await call(http, proxy, "/v1/chat/completions", first, trace_id)
    await call(http, proxy, "/v1/messages", second, trace_id)
    await call(http, proxy, "/v1/chat/completions", {**first, "model": "nope"}, trace_id)
    trace = await wait_for_trace(http, proxy.admin_url, trace_id, spans=3)
    costs = [s["cost_usd"] for s in trace["spans"]]
    assert costs.count(None) == 1
    assert trace["cost_usd"] == pytest.approx(sum(c for c in costs if c is not None), rel=1e-9)


async def test_stats_count_calls_and_cost_and_metrics_show_cost(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Each call adds one call and its cost to the hour's stats (overall and per model), and
    to the /metrics cost counter; /metrics names the price data's version."""
    await call(http, proxy, "/v1/chat/completions", chat_body(10, False), "cost-stats-1")
    await call(http, proxy, "/v1/chat/completions", chat_body(20, False), "cost-stats-2")
    one = await wait_for_trace(http, proxy.admin_url, "cost-stats-1")
    two = await wait_for_trace(http, proxy.admin_url, "cost-stats-2")
    spent = one["cost_usd"] + two["cost_usd"]

    async def stats(group_by: str | None = None) -> Any:
        params = {"bucket": "hour", **({"group_by": group_by} if group_by else {})}
        async with http.get(f"{proxy.admin_url}/api/stats/feedback", params=params) as resp:
            assert resp.status == 200
            return await resp.json()

    body = await eventually(
        stats, until=lambda b: sum(r["calls"] for r in b["buckets"]) == 2, what="calls counted"
    )
    assert sum(r["cost_usd"] for r in body["buckets"]) == pytest.approx(spent, rel=1e-9)
    rows = [r for r in (await stats("model"))["buckets"] if r["model"] == OPENAI_MODEL]
    assert sum(r["calls"] for r in rows) == 2
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(spent, rel=1e-9)
    async with http.get(f"{proxy.admin_url}/metrics") as resp:
        text = await resp.text()
    line = next(
        ln for ln in text.splitlines()
        if ln.startswith("feedback_proxy_cost_usd_total{") and f'model="{OPENAI_MODEL}"' in ln
    )  # fmt: skip
    assert float(line.split()[-1]) == pytest.approx(spent, rel=1e-9)
    assert f'feedback_proxy_price_data_info{{version="{genai_prices.__version__}"}} 1.0' in text


# ----------------------------------------------------------------------------- cost filters


def price_table() -> PriceTable:
    """This process's price table (built once per genai-prices release, then read)."""
    table = load_price_table()
    assert table is not None
    return table


def priced_span(trace_id: str, span_id: str, prompt: int, started_ms: int) -> dict[str, Any]:
    """A span record of gpt-4o-mini with ``prompt`` input tokens, as the recorder builds it."""
    record = span_record(trace_id, span_id, started_ms)
    usage = {"input_tokens": prompt, "output_tokens": 0, "total_tokens": prompt}
    record["span"].update(method="POST", path="/v1/chat/completions", usage=usage)
    return record


async def test_cost_min_and_max_filter_traces_newest_first(
    redis_client: Any, keys: Any, store: RedisStore
) -> None:
    """cost_min/cost_max return exactly the traces whose summed cost is in range, newest
    first, including a trace that crossed the bound with its second span."""
    priced = RedisStore(redis_client, keys, 30, pricer=SpanPricer(price_table()))
    now = int(time.time() * 1000)
    prompts = [10, 100, 1_000, 10_000, 100_000, 1_000_000]  # $0.0000015 ... $0.15
    records = [
        priced_span(f"cf-{i}", "a" * 16, prompt, now - 60_000 + i)
        for i, prompt in enumerate(prompts)
    ]
    records.append(priced_span("cf-0", "b" * 16, 60_000, now - 50_000))  # cf-0 grows later
    unpriced = span_record("cf-none", "a" * 16, now - 1)  # no usage: cost null
    try:
        await priced.write_batch([*records, unpriced])
        costs = {}
        for i in range(len(prompts)):
            trace = await store.get_trace(f"cf-{i}")
            assert trace is not None
            costs[f"cf-{i}"] = trace["cost_usd"]
        assert costs["cf-0"] == pytest.approx(60_010 * 0.15e-6, rel=1e-9)
        query = TraceQuery(redis_client, keys)
        for low, high in [(0.001, None), (None, 0.0001), (0.00001, 0.01), (0.2, None), (0, None)]:
            page = await query.run(TraceFilter(cost_min=low, cost_max=high), limit=50)
            want = [
                t for t, c in sorted(costs.items(), key=lambda kv: kv[0], reverse=True)
                if (low is None or c >= low) and (high is None or c <= high)
            ]  # fmt: skip
            assert [t["trace_id"] for t in page.traces] == want, (low, high)
    finally:
        await priced.close()


async def test_cost_filter_drives_from_a_cost_step_index(
    redis_client: Any, keys: Any, store: RedisStore
) -> None:
    """Priced traces are listed in the cost-step indexes their cost reaches, and a cost filter
    walks the step index bounding it (not every trace) when it is the smallest candidate."""
    priced = RedisStore(redis_client, keys, 30, pricer=SpanPricer(price_table()))
    try:
        await priced.write_batch([priced_span("cs-1", "a" * 16, 100_000, int(time.time() * 1000))])
        cost = (await store.get_trace("cs-1") or {})["cost_usd"]  # 100k tokens: $0.015
        assert cost == pytest.approx(0.015)
        assert await redis_client.zscore(keys.index("cost_ge", "0.01"), "cs-1") is not None
        assert await redis_client.zscore(keys.index("cost_ge", "0.1"), "cs-1") is None
        assert await redis_client.zscore(keys.index("cost_le", "0.1"), "cs-1") is not None
        query = TraceQuery(redis_client, keys)
        drivers = driver_indexes(TraceFilter(cost_min=0.05, cost_max=0.5), keys)
        assert drivers == [keys.index("cost_ge", "0.01"), keys.index("cost_le", "1")]
        assert await query._driver(TraceFilter(cost_min=0.02)) == keys.index("cost_ge", "0.01")
        assert driver_indexes(TraceFilter(cost_min=0.000001), keys) == [keys.index_by_time]
    finally:
        await priced.close()


async def test_bad_cost_filters_are_400(proxy: RunningProxy, http: aiohttp.ClientSession) -> None:
    """A cost that is not a non-negative number, or a max below the min, is a 400 naming it."""
    for params, name in [
        ({"cost_min": "-1"}, "cost_min"), ({"cost_max": "lots"}, "cost_max"),
        ({"cost_min": "0.5", "cost_max": "0.1"}, "cost_max"),
    ]:  # fmt: skip
        async with http.get(f"{proxy.admin_url}/api/traces", params=params) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == name


# ----------------------------------------------------------------------------- the pricer itself


def test_pricer_matches_genai_prices_and_caches_per_model() -> None:
    """The fast path gives genai-prices' figure for OpenAI and Anthropic models, also with
    cache tokens; the lookup runs once per (provider, model); the cache is bounded."""
    pricer = SpanPricer(price_table())
    started = int(time.time() * 1000)
    cases = [
        ("gpt-4o-mini", "/v1/chat/completions", {"input_tokens": 1234, "output_tokens": 56,
         "cache_read_tokens": 1000}, {"input_tokens": 1234, "cache_read_tokens": 1000}),
        ("gpt-4.1", "/v1/responses", {"input_tokens": 99, "output_tokens": 7},
         {"input_tokens": 99}),
        ("claude-sonnet-4-20250514", "/v1/messages", {"input_tokens": 10, "output_tokens": 300,
         "cache_read_tokens": 4000, "cache_write_tokens": 900},
         {"input_tokens": 4910, "cache_read_tokens": 4000, "cache_write_tokens": 900}),
    ]  # fmt: skip
    for model, path, usage, reported in cases:
        provider = "anthropic" if "claude" in model else "openai"
        span = {"upstream": "u", "method": "POST", "path": path, "model": model, "usage": usage}
        expected = reference(model, provider, output_tokens=usage["output_tokens"], **reported)
        assert pricer.cost(span, started) == pytest.approx(expected, rel=1e-9), model  # type: ignore[arg-type]
    assert len(pricer._models) == 3
    for i in range(MAX_CACHED + 10):
        pricer.cost({"upstream": "u", "method": "POST", "path": "/v1/chat/completions",  # type: ignore[typeddict-item]
                     "model": f"m{i}", "usage": {"input_tokens": 1}}, started)  # fmt: skip
    assert len(pricer._models) <= MAX_CACHED


def test_check_config_names_the_price_data_version(tmp_path: Path) -> None:
    """check-config shows which genai-prices release prices the spans."""
    done = run_cli(tmp_path, "check-config", env=minimal_env())
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["price_data"] == {"package": "genai-prices", "version": genai_prices.__version__}


def test_anthropic_one_hour_cache_writes_cost_their_own_rate() -> None:
    """Anthropic's usage splits cache writes into 5-minute and 1-hour ones
    (``cache_creation``); the 1-hour part is priced at its own rate, as genai-prices does."""
    model = "claude-sonnet-4-20250514"
    usage = {"input_tokens": 20, "output_tokens": 100, "cache_read_tokens": 0,
             "cache_write_tokens": 3000}  # fmt: skip
    raw = {"cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}}
    span = {"upstream": "u", "method": "POST", "path": "/v1/messages", "model": model,
            "usage": usage, "raw_usage": raw}  # fmt: skip
    cost = SpanPricer(price_table()).cost(span, int(time.time() * 1000))  # type: ignore[arg-type]
    expected = reference(
        model, "anthropic", input_tokens=3020, cache_write_tokens=3000,
        cache_write_1h_tokens=2000, output_tokens=100,
    )  # fmt: skip
    assert cost == pytest.approx(expected, rel=1e-9)
    assert cost != pytest.approx(reference(model, "anthropic", input_tokens=3020,
                                           cache_write_tokens=3000, output_tokens=100))  # fmt: skip


async def test_cli_traces_filters_by_cost(
    proxy: RunningProxy, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """`feedback-proxy traces --cost-min/--cost-max` pass the filters to the admin API."""
    await call(http, proxy, "/v1/chat/completions", chat_body(10, False), "cost-cli")
    trace = await wait_for_trace(http, proxy.admin_url, "cost-cli")
    listed = await eventually(
        lambda: cli("traces", "--json", "--cost-min", "0", "--admin-url", proxy.admin_url),
        until=lambda code: code == 0 and "cost-cli" in capsys.readouterr().out,
        what="the priced trace listed",
    )
    assert listed == 0
    cost = trace["cost_usd"]
    assert (
        await cli("traces", "--cost-max", f"{cost / 2:.12f}", "--admin-url", proxy.admin_url) == 0
    )
    assert capsys.readouterr().out.startswith("no matching traces")
