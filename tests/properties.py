"""Shared Hypothesis settings for the property tests: a fixed seed (``derandomize``), a bounded
number of examples, no deadline (the box is shared) and no example database on disk, so a run
is repeatable and its cost is known. ``examples(n)`` sets one test's budget.

To hunt for new counterexamples, ``FP_PROPERTIES_EXPLORE=20`` runs 20 times the examples
with a random seed (never in CI: a failure found that way becomes an explicit test)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_EXPLORE = int(os.environ.get("FP_PROPERTIES_EXPLORE", "0") or 0)

BASE = settings(
    derandomize=not _EXPLORE,
    deadline=None,
    database=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def examples(count: int) -> settings:
    """The shared settings with ``count`` examples (times the explore factor, if set)."""
    return settings(BASE, max_examples=count * max(1, _EXPLORE))
