"""The trends page's charts as geometry, drawn on the server (the template writes the SVG).

Pure (no aiohttp, no redis). A chart is bars (stacked per bucket) or lines (one per series),
on a fixed viewBox; every mark carries its value as text for its tooltip, and the series
differ by shape and dash as well as colour, so they read in greyscale too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT = 720.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 12.0, 12.0, 28.0
MAX_SERIES = 6
MAX_X_LABELS = 8
# (stroke colour, dash pattern, marker shape): distinct in colour and in greyscale.
STYLES = (
    ("#1f6feb", "", "circle"),
    ("#c2410c", "6 3", "square"),
    ("#15803d", "2 3", "triangle"),
    ("#7e22ce", "8 3 2 3", "diamond"),
    ("#0f766e", "1 2", "circle"),
    ("#a16207", "10 4", "square"),
)
BAR_FILLS = {"positive": "#2e7d32", "negative": "#c62828", "cost": "#1f6feb"}


@dataclass(frozen=True, slots=True)
class Mark:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str
    dash: str
    shape: str
    marks: list[Mark] = field(default_factory=list)  # for bars: rectangles; lines: points
    hatched: bool = False

    @property
    def points(self) -> str:
        return " ".join(f"{m.x:.1f},{m.y:.1f}" for m in self.marks)


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    kind: str  # "bars" or "lines"
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    empty: bool
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    bottom: float = HEIGHT - BOTTOM


def _plot_x(index: int, count: int) -> tuple[float, float]:
    """(centre, slot width) of bucket ``index`` of ``count``."""
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return LEFT + slot * (index + 0.5), slot


def _plot_y(value: float, top: float) -> float:
    return HEIGHT - BOTTOM - (value / top if top else 0) * (HEIGHT - BOTTOM - TOP)


def _ticks(top: float, fmt: Callable[[float], str]) -> list[tuple[float, str]]:
    """Gridlines at round steps: fifths of the top (quarters when it starts with a 2)."""
    leading = top / 10 ** math.floor(math.log10(top))
    steps = 4 if round(leading, 6) == 2 else 5
    return [(_plot_y(top * i / steps, top), fmt(top * i / steps)) for i in range(steps + 1)]


def _x_labels(labels: Sequence[str]) -> list[tuple[float, str]]:
    step = max(1, -(-len(labels) // MAX_X_LABELS))
    return [(_plot_x(i, len(labels))[0], labels[i]) for i in range(0, len(labels), step)]


def _nice_top(value: float) -> float:
    """The axis top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if value <= f * magnitude * 1.000001)


def bar_chart(
    key: str,
    title: str,
    labels: Sequence[str],
    stacks: Sequence[tuple[str, Sequence[float]]],
    fmt: Callable[[float], str],
) -> Chart:
    """Bars per bucket, the stacks (name, values per bucket) on top of each other."""
    totals = [sum(values[i] for _, values in stacks) for i in range(len(labels))]
    top = _nice_top(max(totals, default=0))
    base = [0.0] * len(labels)
    series: list[Series] = []
    for name, values in stacks:
        marks = []
        for i, value in enumerate(values):
            centre, slot = _plot_x(i, len(labels))
            y0, y1 = _plot_y(base[i], top), _plot_y(base[i] + value, top)
            width = max(slot * 0.7, 1.0)
            marks.append(
                Mark(centre - width / 2, y1, width, y0 - y1, f"{labels[i]} {name}: {fmt(value)}")
            )
            base[i] += value
        fill = BAR_FILLS.get(name, STYLES[len(series) % len(STYLES)][0])
        series.append(Series(name, fill, "", "square", marks, hatched=name == "negative"))
    return Chart(key, title, "bars", series, _ticks(top, fmt), _x_labels(labels), not any(totals))


def line_chart(
    key: str,
    title: str,
    labels: Sequence[str],
    lines: Sequence[tuple[str, Sequence[float | None]]],
    fmt: Callable[[float], str],
    top: float | None = None,
) -> Chart:
    """One line per series (at most MAX_SERIES); a bucket without a value has no point."""
    values = [v for _, vs in lines for v in vs if v is not None]
    top = top or _nice_top(max(values, default=0))
    series = []
    for n, (name, points) in enumerate(lines[:MAX_SERIES]):
        colour, dash, shape = STYLES[n % len(STYLES)]
        marks = [
            Mark(_plot_x(i, len(labels))[0], _plot_y(v, top), 0, 0, f"{labels[i]} {name}: {fmt(v)}")
            for i, v in enumerate(points)
            if v is not None
        ]
        series.append(Series(name, colour, dash, shape, marks))
    return Chart(key, title, "lines", series, _ticks(top, fmt), _x_labels(labels), not values)


def by_group(
    buckets: Sequence[Mapping[str, Any]], group_by: str | None
) -> tuple[list[str], dict[str, dict[str, Mapping[str, Any]]]]:
    """(bucket labels, group -> label -> stats row) of a stats answer."""
    labels = list(dict.fromkeys(_label(row["bucket_start"]) for row in buckets))
    groups: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in buckets:
        group = str(row.get(group_by, "")) if group_by else "all"
        groups.setdefault(group, {})[_label(row["bucket_start"])] = row
    return labels, groups


def _label(iso: str) -> str:
    return iso[5:10] + (" " + iso[11:16] if iso[11:16] != "00:00" else "")


def _share(row: Mapping[str, Any] | None) -> float | None:
    if not row:
        return None
    votes = (row.get("positive") or 0) + (row.get("negative") or 0)
    return (row.get("negative") or 0) / votes if votes else None


def _get(row: Mapping[str, Any] | None, name: str) -> float | None:
    value = row.get(name) if row else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _dollars(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def trend_charts(buckets: Sequence[Mapping[str, Any]], group_by: str | None) -> list[Chart]:
    """Votes, negative share, rating average and (when the stats carry it) cost per bucket:
    stacked bars overall, one line per group with ``group_by``."""
    labels, groups = by_group(buckets, group_by)
    has_cost = any("cost_usd" in row for row in buckets)

    def per_group(value: Callable[[Mapping[str, Any] | None], float | None]) -> list[Any]:
        return [(g, [value(rows.get(label)) for label in labels]) for g, rows in groups.items()]

    def votes(row: Mapping[str, Any] | None) -> float | None:
        return None if row is None else (_get(row, "positive") or 0) + (_get(row, "negative") or 0)

    charts: list[Chart] = []
    if group_by is None:
        rows = groups.get("all", {})
        stacks = [
            (n, [_get(rows.get(lb), n) or 0 for lb in labels]) for n in ("positive", "negative")
        ]
        charts.append(bar_chart("votes", "Votes per bucket", labels, stacks, _count))
    else:
        charts.append(line_chart("votes", "Votes per bucket", labels, per_group(votes), _count))
    charts.append(
        line_chart("share", "Negative share of votes", labels, per_group(_share), _percent, top=1.0)
    )
    charts.append(
        line_chart(
            "rating",
            "Rating average",
            labels,
            per_group(lambda r: _get(r, "rating_average")),
            _count,
            top=5.0,
        )
    )
    if has_cost and group_by is None:
        rows = groups.get("all", {})
        cost = [("cost", [_get(rows.get(lb), "cost_usd") or 0 for lb in labels])]
        charts.append(bar_chart("cost", "Cost per bucket (USD)", labels, cost, _dollars))
    elif has_cost:
        charts.append(
            line_chart(
                "cost",
                "Cost per bucket (USD)",
                labels,
                per_group(lambda r: _get(r, "cost_usd")),
                _dollars,
            )
        )
    return charts
