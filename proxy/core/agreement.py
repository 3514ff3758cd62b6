"""How well an evaluator agrees with users: the figures of ``GET /api/stats/agreement``.

Pure arithmetic over what the store sums per hour: the 2x2 confusion matrix (user vote x
evaluator verdict) and the (user rating, score value) pairs. Python's own ``statistics``
module does the Pearson correlation and the normal quantile; the rest is a few textbook lines
(Cohen's kappa with its large-sample standard error, the Wilson interval, average ranks for
Spearman), so the runtime needs no SciPy (tens of megabytes of compiled code for a dozen
lines). A figure that cannot be computed (no data, no variance) is None, never 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

PASS_LABELS = frozenset({"pass", "true", "positive", "good", "correct"})
"""Labels that count as a pass; any other label is a fail. A score with only a value passes
when the value is at least the query's threshold (``agreement_read.lua`` decides both)."""
Z_95 = statistics.NormalDist().inv_cdf(0.975)
MIN_TRUSTED_N = 30
MIN_TRUSTED_CELL = 5


def agreement_figures(
    cells: tuple[int, int, int, int], ratings: Sequence[float], values: Sequence[float]
) -> dict[str, Any]:
    """Every figure of the answer except ``score`` (the caller's), from the confusion matrix
    (positive & pass, positive & fail, negative & pass, negative & fail) and the (user rating,
    score value) pairs of the traces that have both."""
    a, b, c, d = cells
    n = a + b + c + d
    kappa, kappa_ci = cohen_kappa(a, b, c, d)
    return {
        "n": n,
        "matrix": {"positive": {"pass": a, "fail": b}, "negative": {"pass": c, "fail": d}},
        "agreement": _ratio(a + d, n),
        "agreement_ci": wilson_interval(a + d, n),
        "cohen_kappa": kappa,
        "cohen_kappa_ci": kappa_ci,
        "negative_precision": _ratio(d, b + d),
        "negative_recall": _ratio(d, c + d),
        "ratings": {
            "n": len(ratings),
            "pearson": pearson(ratings, values),
            "spearman": spearman(ratings, values),
        },
        "warnings": warnings(n, cells),
    }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def cohen_kappa(a: int, b: int, c: int, d: int) -> tuple[float | None, list[float] | None]:
    """Kappa of the 2x2 table [[a, b], [c, d]] and its 95 % interval (large-sample standard
    error ``sqrt(po (1 - po) / (n (1 - pe)^2))``, clipped to [-1, 1]); None when n = 0 or the
    chance agreement is 1 (both raters constant: kappa is undefined)."""
    n = a + b + c + d
    if n == 0:
        return None, None
    observed = (a + d) / n
    chance = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
    if chance >= 1:
        return None, None
    kappa = (observed - chance) / (1 - chance)
    error = math.sqrt(observed * (1 - observed) / n) / (1 - chance)
    return kappa, [max(-1.0, kappa - Z_95 * error), min(1.0, kappa + Z_95 * error)]


def wilson_interval(successes: int, n: int) -> list[float] | None:
    """The 95 % Wilson score interval of a proportion (sound at 0 and 1, unlike p ± z·se)."""
    if n == 0:
        return None
    p, z2 = successes / n, Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None for fewer than two pairs or a constant side."""
    if len(x) < 2:
        return None
    try:
        return statistics.correlation(x, y)
    except statistics.StatisticsError:  # a constant input: no variance
        return None


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the average ranks (ties share their mean rank)."""
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, each run of equal values getting the mean of the ranks it spans."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def warnings(n: int, cells: Sequence[int]) -> list[str]:
    """Why the figures may not be trusted yet."""
    found = []
    if n < MIN_TRUSTED_N:
        found.append(f"small sample: n = {n} (< {MIN_TRUSTED_N})")
    if n and min(cells) < MIN_TRUSTED_CELL:
        found.append(f"a cell of the matrix holds fewer than {MIN_TRUSTED_CELL} traces")
    return found
