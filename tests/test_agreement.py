"""GET /api/stats/agreement: the evaluator against the users, checked against figures computed
here independently (textbook formulas written out, and published examples)."""

from __future__ import annotations

import math
import random
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.admin.api.scores import parse_agreement_query
from proxy.admin.params import InvalidParameter
from proxy.core.agreement import (
    agreement_figures,
    average_ranks,
    cohen_kappa,
    spearman,
    wilson_interval,
)
from proxy.feedback.scores import parse_score, score_record
from proxy.store.redis_store import RedisStore
from tests.conftest import RunningProxy
from tests.factories import feedback, make_trace

pytestmark = pytest.mark.redis_backends


# -- independent references ----------------------------------------------------------------------


def ref_pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    sx, sy = sum(x), sum(y)
    sxy = sum(a * b for a, b in zip(x, y, strict=True))
    sxx, syy = sum(a * a for a in x), sum(b * b for b in y)
    return (n * sxy - sx * sy) / math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))


def ref_ranks(values: list[float]) -> list[float]:
    """Mean rank per distinct value: 1 + (values below) + (ties - 1) / 2."""
    return [
        1 + sum(v < value for v in values) + (sum(v == value for v in values) - 1) / 2
        for value in values
    ]


def ref_kappa(a: int, b: int, c: int, d: int) -> float:
    n = a + b + c + d
    po = (a + d) / n
    yes_user, yes_eval = (a + b) / n, (a + c) / n
    pe = yes_user * yes_eval + (1 - yes_user) * (1 - yes_eval)
    return (po - pe) / (1 - pe)


# -- the arithmetic ------------------------------------------------------------------------------


def test_kappa_matches_the_textbook_example() -> None:
    """Kappa of the table [[20, 5], [10, 15]] is 0.4 (the usual worked example)."""
    kappa, interval = cohen_kappa(20, 5, 10, 15)
    assert kappa == pytest.approx(0.4)
    assert kappa == pytest.approx(ref_kappa(20, 5, 10, 15))
    assert interval is not None
    assert interval[0] < 0.4 < interval[1]


def test_wilson_interval_matches_the_published_value() -> None:
    """Wilson 95 % for 81 of 263 is [0.2553, 0.3662] (Newcombe 1998, table I)."""
    interval = wilson_interval(81, 263)
    assert interval == pytest.approx([0.2553, 0.3662], abs=5e-4)
    assert wilson_interval(0, 10) is not None
    assert wilson_interval(0, 0) is None


def test_average_ranks_share_ties() -> None:
    assert average_ranks([3, 1, 3, 2, 3]) == [4.0, 1.0, 4.0, 2.0, 4.0]
    values = [5.0, 1.0, 2.5, 2.5, 4.0, 1.0]
    assert average_ranks(values) == ref_ranks(values)


def test_spearman_with_ties_equals_pearson_of_mean_ranks() -> None:
    """Ratings tie a lot; rho is Pearson's r of the mean ranks, computed here by hand."""
    ratings = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 4.0, 1.0]
    values = [0.1, 0.4, 0.3, 0.3, 0.9, 0.8, 0.8, 0.2]
    expected = ref_pearson(ref_ranks(ratings), ref_ranks(values))
    assert spearman(ratings, values) == pytest.approx(expected)


def test_no_data_gives_nulls_never_zeros() -> None:
    """n = 0: every figure is null, the matrix is zeros, and a warning says why."""
    figures = agreement_figures((0, 0, 0, 0), [], [])
    assert figures["n"] == 0
    for name in ("agreement", "agreement_ci", "cohen_kappa", "cohen_kappa_ci",
                 "negative_precision", "negative_recall"):  # fmt: skip
        assert figures[name] is None, name
    assert figures["ratings"] == {"n": 0, "pearson": None, "spearman": None}
    assert figures["warnings"]


def test_no_variance_gives_null_kappa_and_correlation() -> None:
    """Everyone positive and every score passing: kappa and r are undefined, not 0."""
    figures = agreement_figures((40, 0, 0, 0), [4.0] * 40, [0.9] * 40)
    assert figures["agreement"] == 1.0
    assert figures["cohen_kappa"] is None
    assert figures["negative_recall"] is None
    assert figures["ratings"]["pearson"] is None
    assert figures["ratings"]["spearman"] is None


# -- through the API -----------------------------------------------------------------------------


async def write_plan(store: RedisStore, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` traces with a random vote and rating (sometimes absent) and a judge score."""
    plan = []
    for i in range(n):
        trace_id = f"ag-{i}"
        vote = rng.choice(["positive", "negative", None])
        rating = rng.choice([1, 2, 2, 3, 4, 5, 5, None])
        value = round(rng.random(), 3)
        label = rng.choice(["pass", "fail", "good", "wrong", None])
        await make_trace(store, trace_id)
        attributes: dict[str, Any] = {}
        if vote:
            attributes["user_feedback"] = vote
        if rating is not None:
            attributes["user_feedback_rating"] = rating
        if attributes:
            await store.merge_feedback(feedback(trace_id, **attributes))
        fields = parse_score({"name": "judge", "value": value, "label": label})
        await store.merge_score(score_record(trace_id, fields))
        plan.append({"vote": vote, "rating": rating, "value": value, "label": label})
    return plan


def expected_matrix(plan: list[dict[str, Any]], threshold: float) -> tuple[int, int, int, int]:
    def passed(item: dict[str, Any]) -> bool:
        if item["label"] is not None:
            return item["label"] in ("pass", "good")
        return bool(item["value"] >= threshold)

    a = sum(1 for p in plan if p["vote"] == "positive" and passed(p))
    b = sum(1 for p in plan if p["vote"] == "positive" and not passed(p))
    c = sum(1 for p in plan if p["vote"] == "negative" and passed(p))
    d = sum(1 for p in plan if p["vote"] == "negative" and not passed(p))
    return a, b, c, d


async def get_agreement(
    http: aiohttp.ClientSession, admin: RunningProxy, **query: str
) -> dict[str, Any]:
    async with http.get(f"{admin.admin_url}/api/stats/agreement", params=query) as resp:
        assert resp.status == 200, await resp.text()
        return dict(orjson.loads(await resp.read()))


async def test_agreement_figures_match_an_independent_computation(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore
) -> None:
    """Matrix, agreement, kappa, negative precision and recall, Pearson and Spearman equal
    what this test computes from what it wrote; a changed vote moves the figures."""
    plan = await write_plan(store, random.Random(16), 60)
    answer = await get_agreement(http, admin, score="judge", threshold="0.4")
    a, b, c, d = expected_matrix(plan, 0.4)
    assert answer["matrix"] == {"positive": {"pass": a, "fail": b},
                                "negative": {"pass": c, "fail": d}}  # fmt: skip
    assert answer["n"] == a + b + c + d
    assert answer["agreement"] == pytest.approx((a + d) / (a + b + c + d))
    assert answer["cohen_kappa"] == pytest.approx(ref_kappa(a, b, c, d))
    assert answer["negative_precision"] == pytest.approx(d / (b + d))
    assert answer["negative_recall"] == pytest.approx(d / (c + d))
    rated = [p for p in plan if p["rating"] is not None]
    ratings, values = [float(p["rating"]) for p in rated], [p["value"] for p in rated]
    assert answer["ratings"]["n"] == len(rated)
    assert answer["ratings"]["pearson"] == pytest.approx(ref_pearson(ratings, values))
    expected_rho = ref_pearson(ref_ranks(ratings), ref_ranks(values))
    assert answer["ratings"]["spearman"] == pytest.approx(expected_rho)
    low, high = answer["agreement_ci"]
    assert low < answer["agreement"] < high

    await store.merge_feedback(feedback("ag-0", user_feedback="negative"))
    plan[0]["vote"] = "negative"
    moved = await get_agreement(http, admin, score="judge", threshold="0.4")
    a, b, c, d = expected_matrix(plan, 0.4)
    assert moved["matrix"]["negative"] == {"pass": c, "fail": d}


async def test_a_replaced_score_counts_once_under_its_new_verdict(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore
) -> None:
    """The same score_id changing its label moves the trace in the matrix, once."""
    await make_trace(store, "flip", user_feedback="negative")
    for label in ("pass", "fail"):
        fields = parse_score({"name": "flipper", "label": label, "score_id": "one"})
        await store.merge_score(score_record("flip", fields))
    answer = await get_agreement(http, admin, score="flipper")
    assert answer["matrix"] == {"positive": {"pass": 0, "fail": 0},
                                "negative": {"pass": 0, "fail": 1}}  # fmt: skip
    assert answer["n"] == 1
    assert answer["warnings"]


async def test_unknown_score_answers_nulls(
    admin: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A score nobody sent: n = 0 and null figures (not a 404, not zeros)."""
    answer = await get_agreement(http, admin, score="never-sent")
    assert answer["score"] == "never-sent"
    assert answer["n"] == 0
    assert answer["agreement"] is None
    assert answer["cohen_kappa"] is None


@pytest.mark.parametrize(
    ("params", "name"),
    [({}, "score"), ({"score": "Bad"}, "score"), ({"score": "j", "threshold": "nan"}, "threshold"),
     ({"score": "j", "since": "yesterday"}, "since"), ({"score": "j", "x": "1"}, "x"),
     ({"score": "j", "since": "2026-02-01", "until": "2026-01-01"}, "until")],
)  # fmt: skip
def test_bad_agreement_parameters_name_the_parameter(params: dict[str, str], name: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_agreement_query({k: [v] for k, v in params.items()}, now_ms=1_800_000_000_000)
    assert caught.value.message.startswith(f"{name}: ")
