"""The cost counter of ``/metrics``: USD of the spans this process stored, by upstream and model.

Counted where spans are priced and written (the store, in the writer's task), once per span
that Redis stored for the first time, so a replayed batch adds nothing. Model labels are
bounded like the call metrics' (``ModelLabels``). Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from proxy.metrics.calls import ModelLabels, Rows


class CostCounter:
    __slots__ = ("_usd", "model_label")

    def __init__(self) -> None:
        self._usd: dict[tuple[str, str], float] = {}
        self.model_label = ModelLabels()

    def add(self, upstream: str, model: str | None, usd: float) -> None:
        key = (upstream, self.model_label(model))
        self._usd[key] = self._usd.get(key, 0.0) + usd

    def snapshot(self) -> Rows:
        return [[list(labels), [usd]] for labels, usd in self._usd.items()]
