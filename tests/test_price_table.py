"""The price table against genai-prices itself: the same model for a reference, the same price
for a usage at a time; and where the table comes from (a cached file, or a child's build).

The table is what prices spans in the proxy (which never imports genai-prices); these tests
import genai-prices to hold every model of its data to it: each provider's models by their
ids and variants of them, each price period at its boundaries, each tier at its edges.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, data_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from proxy.recording import price_cache, price_table, price_table_build
from proxy.recording.price_cache import table_dirs, table_name
from proxy.recording.price_table import ModelPrices, PriceTable, PriceTableError
from tests import test_cost
from tests.test_cli import REPO_ROOT

NOW_MS = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
DASHED_DATE = re.compile(r"-(20\d\d)-(\d\d)-(\d\d)")


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return test_cost.price_table()


@pytest.fixture(scope="module")
def table_bytes(table: PriceTable) -> bytes:
    """The text of the table file this process read or built."""
    for directory in table_dirs():
        path = directory / table_name()
        if path.exists():
            return path.read_bytes()
    raise AssertionError("no price table file was written")


def snapshot() -> Any:
    return data_snapshot.get_snapshot()


def expected_model(provider_id: str, ref: str) -> str | None:
    try:
        _, model = snapshot().find_provider_model(ref, None, provider_id, None)
    except LookupError:
        return None
    return str(model.id)


def found_model(table: PriceTable, provider_id: str, ref: str) -> str | None:
    model = table.find_model(provider_id, ref)
    return None if model is None else model.id


# ----------------------------------------------------------------------------- lookups


def model_refs(provider: Any) -> list[str]:
    """References a client may send for this provider's models: the ids, upper-cased, with a
    compact date instead of a dashed one, with a suffix, and the models its fallbacks list."""
    refs: list[str] = []
    for model in provider.models:
        refs += [model.id, model.id.upper(), f"{model.id}-preview", f"acme/{model.id}"]
        refs.append(DASHED_DATE.sub(r"-\1\2\3", model.id))
    for other_id in provider.fallback_model_providers or ():
        other = next((p for p in snapshot().providers if p.id == other_id), None)
        refs += [model.id for model in (other.models if other else [])]
    return [*refs, "", "no-such-model", "GPT-4O-MINI", "claude-sonnet-4-20250514"]


def test_every_reference_finds_the_model_genai_prices_finds(table: PriceTable) -> None:
    """Per provider, each model id and its variants (case, compact dates, prefixes and
    suffixes, the fallback providers' models) name the same model in the table as in
    genai-prices, or none in both."""
    compared = 0
    for provider in snapshot().providers:
        for ref in model_refs(provider):
            assert found_model(table, provider.id, ref) == expected_model(provider.id, ref), (
                provider.id,
                ref,
            )
            compared += 1
    assert compared > 9000


def test_providers_are_found_by_url_and_by_id_as_genai_prices_finds_them(
    table: PriceTable,
) -> None:
    """Upstream base URLs choose the provider genai-prices chooses; ids and the names its
    provider_match clauses accept (case and spaces aside) too; unknown ones none."""
    urls = [
        "https://api.openai.com/v1", "https://api.anthropic.com", "https://openrouter.ai/api/v1",
        "https://api.groq.com/openai/v1", "https://x.openai.azure.com/openai", "http://127.0.0.1:9",
        "https://api.deepseek.com", "https://api.mistral.ai/v1", "https://example.com",
        "https://generativelanguage.googleapis.com/v1beta",
    ]  # fmt: skip
    for url in urls:
        try:
            expected = snapshot().find_provider(None, None, url).id
        except LookupError:
            expected = None
        assert table.provider_for_url(url) == expected, url
    names = [p.id for p in snapshot().providers]
    for name in [*names, *(n.upper() for n in names), " OpenAI ", "amazon", "vertex", "nope"]:
        try:
            expected = snapshot().find_provider(None, name, None).id
        except LookupError:
            expected = None
        assert table.provider_by_id(name) == expected, name


# ----------------------------------------------------------------------------- prices


def price_sets(model: ModelInfo) -> list[ModelPrice]:
    return [model.prices] if isinstance(model.prices, ModelPrice) else [
        c.prices for c in model.prices
    ]  # fmt: skip


def moments(model: ModelInfo) -> list[int]:
    """Start times that reach every period: each start date and the millisecond before it,
    inside and just outside each daily window, and a fixed now."""
    found = [NOW_MS]
    if isinstance(model.prices, ModelPrice):
        return found
    for conditional in model.prices:
        constraint = conditional.constraint
        if isinstance(constraint, StartDateConstraint):
            day = (constraint.start_date - date(1970, 1, 1)).days * DAY_MS
            found += [day, day - 1, day + DAY_MS - 1]
        elif isinstance(constraint, TimeOfDateConstraint):
            for moment in (constraint.start_time, constraint.end_time):
                at = datetime.combine(date(2026, 12, 1), moment)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
                ms = int(at.timestamp() * 1000)
                found += [ms, ms - 1, ms + 1]
    return found


def usages(model: ModelInfo) -> list[tuple[int, int, int, int, int]]:
    """(uncached, cache read, cache write, output, 1-hour write) mixes, with the total input
    at each tier start of the model's prices, one below it and one above."""
    starts = {0, 1_000}
    for price in price_sets(model):
        for value in vars(price).values():
            if isinstance(value, TieredPrices):
                starts |= {tier.start for tier in value.tiers}
    found = [(0, 0, 0, 0, 0), (0, 0, 0, 250, 0), (120, 0, 0, 0, 0)]
    for start in sorted(starts):
        for total in (start - 1, start, start + 1):
            if total >= 30:
                found.append((total - total // 3 - total // 10, total // 3, total // 10, 77, 3))
                found.append((total, 0, 0, 1_234, 0))
    return found


def reference_cost(model: ModelInfo, started_ms: int, counts: tuple[int, ...]) -> float | None:
    prices = model.get_prices(datetime.fromtimestamp(started_ms / 1000, UTC))
    if prices.input_mtok is None and prices.output_mtok is None:
        return None
    uncached, read, write, output, write_1h = counts
    usage = Usage(
        input_tokens=uncached + read + write, cache_read_tokens=read, cache_write_tokens=write,
        output_tokens=output, cache_write_1h_tokens=write_1h,
    )  # fmt: skip
    total: Decimal = prices.calc_price(usage)["total_price"]
    return float(total)


def table_models(table: PriceTable, provider_id: str) -> dict[str, ModelPrices]:
    """The provider's models in the table by id (each one, also those an earlier model's
    match shadows in lookups)."""
    return {model.id: model for model, _ in table._models_of(provider_id)}


def test_every_model_costs_what_genai_prices_charges(table: PriceTable) -> None:
    """Every model of every provider, at every period boundary and tier edge, costs what
    genai-prices' own calc_price says (float rounding aside); unpriced ones cost None."""
    compared = 0
    for provider in snapshot().providers:
        for model in provider.models:
            priced = models[model.id] if (models := table_models(table, provider.id)) else None
            assert priced is not None, (provider.id, model.id)
            for started_ms in moments(model):
                for counts in usages(model):
                    expected = reference_cost(model, started_ms, counts)
                    got = priced.cost(started_ms, counts)
                    where = (provider.id, model.id, started_ms, counts)
                    if expected is None:
                        assert got is None, where
                    else:
                        assert got == pytest.approx(expected, rel=1e-9, abs=1e-15), where
                    compared += 1
    assert compared > 20_000


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (time(0, 30), time(16, 30)),  # deepseek's off-peak hours
        (time(22, 0), time(6, 0)),  # across midnight
        (time(1, 0, tzinfo=timezone(timedelta(hours=8))), time(9, 0)),  # a zone, then wrapped
    ],
)
def test_a_daily_window_applies_when_genai_prices_says_it_does(start: time, end: time) -> None:
    """A time-of-day window, wrapping midnight or not, is active on the same minutes as
    genai-prices' own constraint says (today's data has no wrapping window to check it on)."""
    constraint = TimeOfDateConstraint(start_time=start, end_time=end)
    when = price_table_build._when(ConditionalPrice(constraint=constraint, prices=ModelPrice()))
    active = price_table._active(when)
    assert active is not None
    day = datetime(2026, 12, 1, tzinfo=UTC)
    for minute in range(0, 24 * 60, 5):
        moment = day + timedelta(minutes=minute)
        assert active(int(moment.timestamp() * 1000)) == constraint.active(moment), moment


# ----------------------------------------------------------------------------- the file


def test_a_corrupt_or_stale_file_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_bytes: bytes
) -> None:
    """A cached file that does not parse, or names another genai-prices release, is replaced
    by a fresh build; a good one is read and not built."""
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return table_bytes

    monkeypatch.setattr(price_cache, "table_dirs", lambda: [tmp_path / "none", tmp_path])
    monkeypatch.setattr(price_cache, "_build", build)
    cached = tmp_path / table_name()
    stale = table_bytes.replace(b'"genai_prices":"', b'"genai_prices":"0.0.0-', 1)
    for bad in (b"not json\n", table_bytes[: len(table_bytes) // 2], stale):
        cached.write_bytes(bad)
        assert price_cache._read_or_build() is not None
        assert cached.read_bytes() == table_bytes
    assert len(builds) == 3
    assert price_cache._read_or_build() is not None
    assert len(builds) == 3


def test_an_unwritable_cache_keeps_the_table_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_bytes: bytes
) -> None:
    """When the cache directory cannot be made, the built table still prices spans."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    monkeypatch.setattr(price_cache, "table_dirs", lambda: [blocker / "cache"])
    monkeypatch.setattr(price_cache, "_build", lambda: table_bytes)
    found = price_cache._read_or_build()
    assert found is not None
    assert found.find_model("openai", "gpt-4o-mini") is not None


def test_a_failed_build_gives_no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that exits non-zero (here: a Python that cannot import the builder) leaves no
    table and no file."""
    monkeypatch.setattr(price_cache, "table_dirs", lambda: [tmp_path])
    monkeypatch.setattr(price_cache.sys, "executable", "/bin/false")
    assert price_cache._read_or_build() is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad", [b"", b'{"format": 99}\n', b'{"format": 1, "genai_prices": "x", "providers": [{}]}\n']
)
def test_text_that_is_no_table_is_refused(bad: bytes) -> None:
    with pytest.raises(PriceTableError):
        PriceTable(bad)


def test_the_proxy_prices_spans_without_loading_genai_prices(tmp_path: Path) -> None:
    """A fresh process builds the table in a child, writes it to its cache, and prices a span;
    neither genai-prices nor pydantic is ever imported into it."""
    script = (
        "import sys, time\n"
        "from proxy.recording.price_cache import load_price_table\n"
        "from proxy.recording.pricing import SpanPricer\n"
        "span = {'upstream': 'u', 'method': 'POST', 'path': '/v1/chat/completions',\n"
        "        'model': 'gpt-4o-mini', 'usage': {'input_tokens': 1000, 'output_tokens': 10}}\n"
        "cost = SpanPricer(load_price_table()).cost(span, int(time.time() * 1000))\n"
        "loaded = [m for m in ('genai_prices', 'pydantic', 'pydantic_core') if m in sys.modules]\n"
        "print(cost, loaded)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    cost, loaded = done.stdout.split(" ", 1)
    assert float(cost) == pytest.approx((1000 * 0.15 + 10 * 0.6) / 1e6)
    assert loaded.strip() == "[]"
    assert (tmp_path / "feedback-proxy" / table_name()).exists() or (
        Path(sys.prefix) / "share" / "feedback-proxy" / table_name()
    ).exists()


def test_the_installations_table_comes_before_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table built into the installation (a container image) is looked for first; the
    user's cache follows XDG_CACHE_HOME."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert table_dirs() == [
        Path(sys.prefix) / "share" / "feedback-proxy",
        tmp_path / "feedback-proxy",
    ]
