"""The price table the proxy prices spans with: genai-prices' data, without genai-prices (pure).

``price_table_build`` writes the table in a child process (it imports genai-prices and pydantic,
which cost a sidecar about 12 MiB of resident memory); this module reads it. The lookup keeps
genai-prices' rules, so a model reference finds the same model and the same price:

- a provider is found by its id (exact, then its ``provider_match`` clause on the lowered,
  stripped id) or by the upstream's URL (``re.match`` of its ``api_pattern``);
- a model reference is lowered, then matched against the provider's models in order, then
  against the models of each of its fallback providers (one step: a fallback's own fallbacks
  are not followed); if nothing matched, a compact date suffix (``-20251211``) is rewritten to
  the dashed form (``-2025-12-11``) and the search is done once more;
- of a model's price periods, the last active one wins, else the first;
- of a period's segments, the last whose ``above`` the total input tokens exceed applies.

genai-prices' special case for the ``litellm`` provider id (a provider prefix in the model
name) is left out: the provider ids the proxy asks for are genai-prices' own ids, never that one.

A provider's models are parsed on first use: most processes price a few models of one or two
providers, and OpenRouter's line alone lists some 900 models.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

FORMAT = 1
DAY_MS = 86_400_000
Matcher = Callable[[str], bool]
Counts = tuple[int, int, int, int, int]  # uncached input, cache read, cache write, output, 1h
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


class PriceTableError(ValueError):
    """The table's text is not a price table this code reads (corrupt, or another format)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """USD rates that apply when the total input tokens exceed ``above``."""

    above: int
    per_request: float
    uncached: float
    cache_read: float
    cache_write: float
    output: float
    cache_write_1h_extra: float

    def cost(self, counts: Counts) -> float:
        uncached, read, write, output, write_1h = counts
        return (
            self.per_request
            + uncached * self.uncached
            + read * self.cache_read
            + write * self.cache_write
            + output * self.output
            + write_1h * self.cache_write_1h_extra
        )


Active = Callable[[int], bool]  # started_ms -> whether a period applies then
Segments = tuple[Segment, ...] | None  # None: no token prices (an image or audio model)


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """One model's price periods, as ``(active or None for always, segments)``."""

    id: str
    periods: tuple[tuple[Active | None, Segments], ...]

    def cost(self, started_ms: int, counts: Counts) -> float | None:
        """The price of ``counts`` at ``started_ms``; None when that period has no token
        prices."""
        segments = self.segments_at(started_ms)
        if segments is None:
            return None
        total_input = counts[0] + counts[1] + counts[2]
        chosen = segments[0]
        for segment in segments:
            if total_input > segment.above:
                chosen = segment
        return chosen.cost(counts)

    def segments_at(self, started_ms: int) -> Segments:
        for active, segments in reversed(self.periods):
            if active is None or active(started_ms):
                return segments
        return self.periods[0][1]


@dataclass(frozen=True, slots=True)
class _Provider:
    id: str
    api_pattern: re.Pattern[str]
    provider_match: Matcher | None
    fallback: tuple[str, ...]


class PriceTable:
    """The parsed index and, provider by provider on first use, the models."""

    def __init__(self, data: bytes) -> None:
        """Parse the table's text; raises ``PriceTableError`` when it is not one."""
        try:
            lines = data.splitlines()
            index = orjson.loads(lines[0])
            if index.get("format") != FORMAT:
                raise PriceTableError(f"price table format {index.get('format')!r}, not {FORMAT}")
            self.genai_prices: str = str(index["genai_prices"])
            self._providers = tuple(_provider(entry) for entry in index["providers"])
            self._raw = _provider_lines(lines[1:])
        except PriceTableError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, re.error) as error:
            raise PriceTableError(f"not a price table: {error}") from error
        missing = {p.id for p in self._providers} - self._raw.keys()
        if missing:
            raise PriceTableError(f"price table lacks the models of {sorted(missing)}")
        self._parsed: dict[str, tuple[tuple[ModelPrices, Matcher], ...]] = {}

    def provider_for_url(self, url: str) -> str | None:
        """The id of the first provider whose API pattern matches ``url`` at its start."""
        for provider in self._providers:
            if provider.api_pattern.match(url):
                return provider.id
        return None

    def provider_by_id(self, provider_id: str) -> str | None:
        """The provider an id names: exactly, else by a provider's ``provider_match``."""
        wanted = provider_id.lower().strip()
        for provider in self._providers:
            if provider.id == wanted:
                return provider.id
        for provider in self._providers:
            if provider.provider_match is not None and provider.provider_match(wanted):
                return provider.id
        return None

    def find_model(self, provider_id: str, model_ref: str) -> ModelPrices | None:
        """The model ``model_ref`` names at that provider (or its fallbacks); None if none."""
        found = self.provider_by_id(provider_id)
        if found is None:
            return None
        ref = model_ref.lower()
        model = self._match(found, ref, fallback=True)
        if model is None:
            dashed = _COMPACT_DATE.sub(_dashed_date, ref)
            if dashed != ref:
                model = self._match(found, dashed, fallback=True)
        return model

    def _match(self, provider_id: str, ref: str, *, fallback: bool) -> ModelPrices | None:
        for model, matches in self._models_of(provider_id):
            if matches(ref):
                return model
        if not fallback:
            return None
        for other in self._provider_named(provider_id).fallback:
            if other in self._raw and (borrowed := self._match(other, ref, fallback=False)):
                return borrowed
        return None

    def _provider_named(self, provider_id: str) -> _Provider:
        return next(p for p in self._providers if p.id == provider_id)

    def _models_of(self, provider_id: str) -> tuple[tuple[ModelPrices, Matcher], ...]:
        parsed = self._parsed.get(provider_id)
        if parsed is None:
            try:
                entries = orjson.loads(self._raw[provider_id])["models"]
                parsed = tuple((_model(entry), compile_clause(entry["match"])) for entry in entries)
            except PriceTableError:
                raise
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, re.error) as error:
                raise PriceTableError(f"price table: {provider_id}'s models: {error}") from error
            self._parsed[provider_id] = parsed
        return parsed


def _provider_lines(lines: Iterable[bytes]) -> dict[str, bytes]:
    """Provider id -> its line, unparsed (only the id is read, from the line's start)."""
    raw: dict[str, bytes] = {}
    for line in lines:
        if line.strip():
            head = orjson.loads(line[: line.index(b',"models"')] + b"}")
            raw[str(head["provider"])] = line
    return raw


def _provider(entry: Mapping[str, Any]) -> _Provider:
    match = entry.get("provider_match")
    return _Provider(
        id=str(entry["id"]),
        api_pattern=re.compile(entry["api_pattern"]),
        provider_match=None if match is None else compile_clause(match),
        fallback=tuple(str(other) for other in entry.get("fallback") or ()),
    )


def _model(entry: Mapping[str, Any]) -> ModelPrices:
    return ModelPrices(
        id=str(entry["id"]),
        periods=tuple((_active(when), _segments(found)) for when, found in entry["periods"]),
    )


def _segments(found: Sequence[Sequence[float]] | None) -> Segments:
    if found is None:
        return None
    return tuple(Segment(int(row[0]), *(float(value) for value in row[1:])) for row in found)


def _active(when: Sequence[Any] | None) -> Active | None:
    """When a period applies: from a UTC day on, or daily between two times of the UTC day
    (microseconds; an end before the start wraps midnight)."""
    if when is None:
        return None
    kind = when[0]
    if kind == "from_day":
        day = int(when[1])
        return lambda started_ms: started_ms // DAY_MS >= day
    if kind == "daily":
        start, end = int(when[1]), int(when[2])
        if end < start:
            return lambda started_ms: not end <= (started_ms % DAY_MS) * 1000 < start
        return lambda started_ms: start <= (started_ms % DAY_MS) * 1000 < end
    raise PriceTableError(f"unknown price period kind {kind!r}")


def compile_clause(entry: Mapping[str, Any]) -> Matcher:
    """A model or provider match clause as a test on lowered text. Text comparisons are
    case-insensitive; a regex is searched as written (genai-prices' rule)."""
    ((kind, value),) = entry.items()
    if kind in ("or", "and"):
        inner = tuple(compile_clause(clause) for clause in value)
        if kind == "or":
            return lambda text: any(test(text) for test in inner)
        return lambda text: all(test(text) for test in inner)
    if kind == "regex":
        pattern = re.compile(value)
        return lambda text: pattern.search(text) is not None
    wanted = str(value).lower()
    if kind == "starts_with":
        return lambda text: text.lower().startswith(wanted)
    if kind == "ends_with":
        return lambda text: text.lower().endswith(wanted)
    if kind == "contains":
        return lambda text: wanted in text.lower()
    if kind == "equals":
        return lambda text: text.lower() == wanted
    raise PriceTableError(f"unknown match clause {kind!r}")


def _dashed_date(match: re.Match[str]) -> str:
    year, month, day = (int(match.group(index)) for index in range(2, 5))
    try:
        date(year, month, day)
    except ValueError:
        return match.group(0)
    return f"-{year:04d}-{month:02d}-{day:02d}"
