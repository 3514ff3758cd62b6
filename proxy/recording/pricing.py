"""The price of a span in USD, from the ``genai-prices`` package (pure).

``genai_prices.calc_price`` costs about 80 µs a call, mostly finding the provider and the model
in its data. ``SpanPricer`` does that lookup once per (provider, model) and UTC hour (prices may
change at a date the data names) and keeps what it found: the per-token prices of the counts
the proxy reads usage for (input, cache read, cache write and its 1-hour part, output). A span
then costs a few multiplications. Before a model's prices are trusted for that, they are checked
once against genai-prices' own arithmetic on a probe usage; a model whose prices are tiered or
otherwise not a plain sum per token keeps genai-prices' calculation (its resolved price object,
without the lookup). The cache is bounded (``MAX_CACHED``; cleared when full: models are few).

Provider: from the upstream's ``base_url`` when genai-prices knows that address (OpenAI,
Anthropic, OpenRouter, Groq, ...), else from the endpoint the call went to (OpenAI's or
Anthropic's API shape). Usage goes in as the provider reported it: genai-prices'
``input_tokens`` includes cached tokens, which is OpenAI's convention; Anthropic's
``input_tokens`` exclude them, so for its API shape the cache counts are added. Unknown model,
unknown usage (neither input nor output counted), or a model without token prices: ``None``,
never a made-up 0.

genai-prices (and the pydantic it is built on, ~0.25 s to import) loads when a ``SpanPricer`` is
made, which ``open_services`` does at start-up: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from proxy.core.records import Span
from proxy.recording.providers.registry import parser_for

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

MAX_CACHED = 4096
HOUR_MS = 3_600_000
PRICE_KEYS = (
    "input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "cache_write_1h_mtok",
)  # fmt: skip
_PROBE = {
    "input_tokens": 1_000_003,
    "cache_read_tokens": 10_007,
    "cache_write_tokens": 1_009,
    "output_tokens": 100_003,
    "cache_write_1h_tokens": 101,
}
# The probe as the fast formula reads it: uncached input, cache read, cache write, output, and
# the 1-hour part of the cache write (priced at the difference of the two write rates).
_PROBE_COUNTS = (
    _PROBE["input_tokens"] - _PROBE["cache_read_tokens"] - _PROBE["cache_write_tokens"],
    _PROBE["cache_read_tokens"],
    _PROBE["cache_write_tokens"],
    _PROBE["output_tokens"],
    _PROBE["cache_write_1h_tokens"],
)
Counts = tuple[int, int, int, int, int]  # input (with cache), read, write, output, 1-hour write
_ENDPOINT_PROVIDER = {"anthropic_messages": "anthropic"}  # every other parser speaks OpenAI


def price_data_version() -> str:
    """The installed genai-prices release, whose bundled price data prices spans: the same
    release gives the same figures (its data is not fetched at run time)."""
    return version("genai-prices")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token for the counts (``cache_write_1h``: what a 1-hour cache write costs more
    than a 5-minute one); ``slow`` keeps genai-prices' own arithmetic."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    cache_write_1h: float = 0.0
    slow: ModelPrice | None = None


class SpanPricer:
    """Prices spans; one per process (the cache is its only state)."""

    def __init__(self, upstream_urls: Mapping[str, str] | None = None) -> None:
        from genai_prices import data_snapshot

        self._snapshot = data_snapshot.get_snapshot()
        self._providers = {
            name: self._provider_of_url(url) for name, url in (upstream_urls or {}).items()
        }
        self._rates: dict[tuple[str, str], tuple[int, Rates | None]] = {}

    def cost(self, span: Span, started_ms: int) -> float | None:
        """The span's price in USD, or None when the model or the usage is unknown."""
        usage, model = span.get("usage"), span.get("response_model") or span.get("model")
        if usage is None or not model:
            return None
        shape = _endpoint_provider(span)
        if shape is None:
            return None
        provider = self._providers.get(span["upstream"]) or shape
        rates = self._rates_for(provider, model, started_ms // HOUR_MS)
        counts = None if rates is None else _price_counts(shape, usage, span.get("raw_usage"))
        if rates is None or counts is None:
            return None
        if rates.slow is not None:
            return _slow_cost(rates.slow, counts)
        input_tokens, cache_read, cache_write, output, write_1h = counts
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0 or write_1h > cache_write:
            return None  # counts that contradict each other: no price is better than a wrong one
        return (
            uncached * rates.input
            + cache_read * rates.cache_read
            + cache_write * rates.cache_write
            + output * rates.output
            + write_1h * rates.cache_write_1h
        )

    def _rates_for(self, provider: str, model: str, hour: int) -> Rates | None:
        key = (provider, model)
        cached = self._rates.get(key)
        if cached is not None and cached[0] == hour:
            return cached[1]
        if len(self._rates) >= MAX_CACHED:
            self._rates.clear()
        rates = self._resolve(provider, model, hour)
        self._rates[key] = (hour, rates)
        return rates

    def _resolve(self, provider: str, model: str, hour: int) -> Rates | None:
        """genai-prices' lookup (the slow part), once per key and hour."""
        from genai_prices import Usage as PriceUsage
        from genai_prices.types import TieredPrices

        try:
            _, info = self._snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            return None
        prices = info.get_prices(datetime.fromtimestamp(hour * HOUR_MS / 1000, UTC))
        values = [getattr(prices, key, None) for key in PRICE_KEYS]
        if values[0] is None and values[3] is None:
            return None  # no token prices (an image or audio model): not a 0
        if any(isinstance(value, TieredPrices) for value in values):
            return Rates(0, 0, 0, 0, slow=prices)
        per_token = _per_token(values)
        per_token[4] -= per_token[2]  # the 1-hour write's extra over a plain write
        expected = float(prices.calc_price(PriceUsage(**_PROBE))["total_price"])
        got = sum(n * rate for n, rate in zip(_PROBE_COUNTS, per_token, strict=True))
        if abs(got - expected) > 1e-9 * max(expected, 1e-9):
            return Rates(0, 0, 0, 0, slow=prices)
        input_rate, read, write, output, write_1h = per_token
        return Rates(input_rate, read, write, output, cache_write_1h=write_1h)

    def _provider_of_url(self, url: str) -> str | None:
        """The genai-prices provider that serves ``url``; None for any other address."""
        if not url:
            return None
        try:
            return str(self._snapshot.find_provider(None, None, url).id)
        except LookupError:
            return None


def _per_token(values: list[Any]) -> list[float]:
    """USD per token from per-million prices; a cache count without a price of its own is
    billed as plain input, a 1-hour write without one as a plain write (genai-prices' rules;
    the probe in ``_resolve`` checks them)."""
    base = values[0] or Decimal(0)
    filled = [
        base if value is None and i in (1, 2) else value or 0 for i, value in enumerate(values[:4])
    ]
    write = values[2] if values[2] is not None else base
    filled.append(values[4] if values[4] is not None else write)
    return [float(value) / 1_000_000 for value in filled]


def _endpoint_provider(span: Span) -> str | None:
    parser = parser_for(span.get("method", ""), span.get("path", ""))
    if parser is None:
        return None
    return _ENDPOINT_PROVIDER.get(parser.name, "openai")


def _price_counts(shape: str, usage: Any, raw: Any) -> Counts | None:
    """(input including cache, cache read, cache write, output, 1-hour cache write) in
    genai-prices' terms, from usage in the convention of the API ``shape``; None when neither
    input nor output is known. Anthropic's 1-hour cache writes are a part of its cache writes,
    read from its usage object (``cache_creation.ephemeral_1h_input_tokens``)."""
    input_tokens, output = usage.get("input_tokens"), usage.get("output_tokens")
    if input_tokens is None and output is None:
        return None
    cache_read = usage.get("cache_read_tokens") or 0
    cache_write = usage.get("cache_write_tokens") or 0
    input_tokens = input_tokens or 0
    write_1h = 0
    if shape == "anthropic":
        input_tokens += cache_read + cache_write
        write_1h = _write_1h(raw)
    return input_tokens, cache_read, cache_write, output or 0, write_1h


def _write_1h(raw: Any) -> int:
    creation = raw.get("cache_creation") if isinstance(raw, dict) else None
    count = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _slow_cost(prices: ModelPrice, counts: Counts) -> float | None:
    from genai_prices import Usage as PriceUsage

    input_tokens, cache_read, cache_write, output, write_1h = counts
    usage = PriceUsage(
        input_tokens=input_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=output,
        cache_write_1h_tokens=write_1h or None,
    )
    try:
        total: Decimal = prices.calc_price(usage)["total_price"]
    except (ValueError, ArithmeticError):
        return None
    return float(total)
