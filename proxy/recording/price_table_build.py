"""Builds the price table from the ``genai-prices`` data, in a child process of its own.

Run as ``python -m proxy.recording.price_table_build [DIR]``: the table goes to stdout, or with
``DIR`` into the file ``price_cache.table_name()`` in that directory (a container image builds
it this way, once). The proxy itself never imports genai-prices: that package and the pydantic
it is built on cost about 12 MiB of resident memory in every process that loads them, a sixth of
a sidecar's budget, for a table of a few hundred numbers per provider.

The table is JSON lines (format ``price_table.FORMAT``):

- the first line is the index: ``format``, the ``genai_prices`` release, and per provider its
  ``id``, ``api_pattern``, ``provider_match`` (a clause) and ``fallback`` provider ids;
- then one line per provider: ``{"provider": id, "models": [...]}``, each model an ``id``, a
  ``match`` clause and its price ``periods``.

A period is ``[when, segments]``. ``when`` is null (always), ``["from_day", days since
1970-01-01]`` or ``["daily", start, end]`` (microseconds of the UTC day; end < start wraps
midnight); as in genai-prices, the last active period wins, and the first when none is.
``segments`` is null when the period has no token prices (an image or audio model: no cost
rather than a made-up 0), else a list of ``[above, per_request, uncached_input, cache_read,
cache_write, output, cache_write_1h_extra]``: the USD rates that apply when the total input
tokens (cache included) exceed ``above``, which is how genai-prices' tiers work.

The rates are not read from the price fields: they are measured on genai-prices' own
``calc_price`` by finite differences, so every rule it applies (a cache count without a price of
its own billed as input, tiers, per-request prices) is in them. Each segment is then checked on
another usage; a model whose price is not linear in the counts that way gets ``segments``
null, so its spans cost None, never a wrong figure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
from genai_prices import Usage, data_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from proxy.recording.price_cache import write_atomically
from proxy.recording.price_table import FORMAT, Counts

EPOCH = date(1970, 1, 1)
_PLAIN_CLAUSES = ("starts_with", "ends_with", "contains", "regex", "equals")


def table_lines() -> Iterator[bytes]:
    """The table, line by line (see the module docstring)."""
    providers = data_snapshot.get_snapshot().providers
    yield orjson.dumps(
        {
            "format": FORMAT,
            "genai_prices": version("genai-prices"),
            "providers": [_provider_entry(provider) for provider in providers],
        }
    )
    for provider in providers:
        models = [_model_entry(model) for model in provider.models]
        yield orjson.dumps({"provider": provider.id, "models": models})


def _provider_entry(provider: Provider) -> dict[str, Any]:
    match = provider.provider_match
    return {
        "id": provider.id,
        "api_pattern": provider.api_pattern,
        "provider_match": None if match is None else clause_entry(match),
        "fallback": list(provider.fallback_model_providers or ()),
    }


def _model_entry(model: ModelInfo) -> dict[str, Any]:
    return {"id": model.id, "match": clause_entry(model.match), "periods": _periods(model)}


def clause_entry(clause: Any) -> dict[str, Any]:
    """genai-prices' match clause as the plain mapping its own data is written in."""
    for name in _PLAIN_CLAUSES:
        if hasattr(clause, name):
            return {name: getattr(clause, name)}
    if hasattr(clause, "or_"):
        return {"or": [clause_entry(inner) for inner in clause.or_]}
    if hasattr(clause, "and_"):
        return {"and": [clause_entry(inner) for inner in clause.and_]}
    raise ValueError(f"unknown genai-prices match clause {type(clause).__name__}")


def _periods(model: ModelInfo) -> list[list[Any]]:
    if isinstance(model.prices, ModelPrice):
        return [[None, segments(model.prices)]]
    return [[_when(price), segments(price.prices)] for price in model.prices]


def _when(price: ConditionalPrice) -> list[Any] | None:
    constraint = price.constraint
    if constraint is None:
        return None
    if isinstance(constraint, StartDateConstraint):
        return ["from_day", (constraint.start_date - EPOCH).days]
    if isinstance(constraint, TimeOfDateConstraint):
        return [
            "daily",
            _utc_microsecond(constraint.start_time),
            _utc_microsecond(constraint.end_time),
        ]
    raise ValueError(f"unknown genai-prices price constraint {type(constraint).__name__}")


def _utc_microsecond(value: time) -> int:
    """Microseconds into the UTC day of a time of day (naive: already UTC)."""
    if value.tzinfo is not None:
        value = datetime.combine(EPOCH, value).astimezone(UTC).time()
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def segments(price: ModelPrice) -> list[list[float]] | None:
    """The rate segments of one price (see the module docstring); None when unpriced."""
    if price.input_mtok is None and price.output_mtok is None:
        return None
    starts = sorted(
        {
            tier.start
            for value in vars(price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    bounds: list[int] = [-1, *starts]
    found: list[list[float]] = []
    for low, high in zip(bounds, [*starts, None], strict=True):
        try:
            rates = _segment_rates(price, low, high)
        except (ValueError, ArithmeticError):  # genai-prices refuses this price's units
            rates = None
        if rates is None:
            return None
        found.append([low, *(float(rate) for rate in rates)])
    return found


def _segment_rates(price: ModelPrice, low: int, high: int | None) -> list[Decimal] | None:
    """[per request, uncached, read, write, output, 1-hour extra] for total input tokens in
    (low, high], by differences around a point of that range; None if a check point disagrees.

    With one input count only in the range (high == low + 1), the uncached rate is folded into
    the per-request part, which is exact at the only count the segment applies to."""
    total = max(low + 1, 3)
    if high is not None and total > high:
        return None
    base = (total - 2, 1, 1, 1, 0)
    at_base = _price(price, base)
    uncached = Decimal(0)
    if high is None or total + 1 <= high:
        uncached = _price(price, (total - 1, 1, 1, 1, 0)) - at_base
    read = _price(price, (total - 3, 2, 1, 1, 0)) - at_base + uncached
    write = _price(price, (total - 3, 1, 2, 1, 0)) - at_base + uncached
    output = _price(price, (total - 2, 1, 1, 2, 0)) - at_base
    write_1h = _price(price, (total - 2, 1, 1, 1, 1)) - at_base
    rates = [Decimal(0), uncached, read, write, output, write_1h]
    rates[0] = at_base - _linear(rates, base)
    for check in _check_points(total, high):
        if not _close(_linear(rates, check), _price(price, check)):
            return None
    return rates


def _check_points(total: int, high: int | None) -> list[Counts]:
    """Usages to check the measured rates on: the far end of the segment and a mixed one."""
    far = total if high is not None and high <= total else (high or total + 1_000_003)
    return [
        (far - far // 7 - far // 11, far // 7, far // 11, 100_003, far // 33),
        (far, 0, 0, 0, 0),
        (total, 0, 0, 7, 0),
    ]


def _price(price: ModelPrice, counts: Counts) -> Decimal:
    uncached, read, write, output, write_1h = counts
    usage = Usage(
        input_tokens=uncached + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=output,
        cache_write_1h_tokens=write_1h,
    )
    total: Decimal = price.calc_price(usage)["total_price"]
    return total


def _linear(rates: list[Decimal], counts: Counts) -> Decimal:
    return rates[0] + sum((n * rate for n, rate in zip(counts, rates[1:], strict=True)), Decimal(0))


def _close(got: Decimal, expected: Decimal) -> bool:
    return abs(got - expected) <= Decimal("1e-12") * max(abs(expected), Decimal("1e-9"))


def main(argv: list[str]) -> int:
    """Write the table to stdout, or into ``argv[0]`` (a directory) under its cache name."""
    data = b"\n".join(table_lines()) + b"\n"
    if argv:
        write_atomically(Path(argv[0]), data)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
