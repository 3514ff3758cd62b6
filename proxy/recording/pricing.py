"""The price of a span in USD, from genai-prices' data (pure).

The data comes as a ``PriceTable`` (``price_table``: built from genai-prices in a child process,
so this process never loads that package and the pydantic under it). ``SpanPricer`` finds a
(provider, model) once and keeps the model's prices (bounded: ``MAX_CACHED``, cleared when full:
models are few); a span then costs a period choice by its start time, a tier choice by its input
tokens and a few multiplications.

Provider: from the upstream's ``base_url`` when genai-prices knows that address (OpenAI,
Anthropic, OpenRouter, Groq, ...), else from the endpoint the call went to (OpenAI's or
Anthropic's API shape). Usage goes in as the provider reported it: genai-prices'
``input_tokens`` includes cached tokens, which is OpenAI's convention; Anthropic's
``input_tokens`` exclude them, so for its API shape the cache counts are added. Unknown model,
unknown usage (neither input nor output counted), a model without token prices, or no table at
all: ``None``, never a made-up 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

from proxy.core.records import Span
from proxy.recording.price_table import ModelPrices, PriceTable, PriceTableError
from proxy.recording.providers.registry import parser_for

MAX_CACHED = 4096
UsageCounts = tuple[int, int, int, int, int]  # input WITH cache, read, write, output, 1h write
_ENDPOINT_PROVIDER = {"anthropic_messages": "anthropic"}  # every other parser speaks OpenAI


def price_data_version() -> str:
    """The installed genai-prices release, whose bundled price data prices spans: the same
    release gives the same figures (its data is not fetched at run time)."""
    return version("genai-prices")


class SpanPricer:
    """Prices spans with one table; one per process (the model cache is its only state)."""

    def __init__(
        self, table: PriceTable | None, upstream_urls: Mapping[str, str] | None = None
    ) -> None:
        self._table = table
        self._providers = {
            name: table.provider_for_url(url) if table is not None and url else None
            for name, url in (upstream_urls or {}).items()
        }
        self._models: dict[tuple[str, str], ModelPrices | None] = {}

    def cost(self, span: Span, started_ms: int) -> float | None:
        """The span's price in USD, or None when the model or the usage is unknown."""
        usage, model = span.get("usage"), span.get("response_model") or span.get("model")
        if usage is None or not model:
            return None
        shape = _endpoint_provider(span)
        if shape is None:
            return None
        provider = self._providers.get(span["upstream"]) or shape
        prices = self._model(provider, model)
        counts = None if prices is None else _price_counts(shape, usage, span.get("raw_usage"))
        if prices is None or counts is None:
            return None
        input_tokens, cache_read, cache_write, output, write_1h = counts
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0 or write_1h > cache_write:
            return None  # counts that contradict each other: no price is better than a wrong one
        return prices.cost(started_ms, (uncached, cache_read, cache_write, output, write_1h))

    def _model(self, provider: str, model: str) -> ModelPrices | None:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        if len(self._models) >= MAX_CACHED:
            self._models.clear()
        found = None
        if self._table is not None:
            try:
                found = self._table.find_model(provider, model)
            except PriceTableError:
                found = None  # a damaged provider line: that provider's spans cost None
        self._models[key] = found
        return found


def _endpoint_provider(span: Span) -> str | None:
    parser = parser_for(span.get("method", ""), span.get("path", ""))
    if parser is None:
        return None
    return _ENDPOINT_PROVIDER.get(parser.name, "openai")


def _price_counts(shape: str, usage: Any, raw: Any) -> UsageCounts | None:
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
