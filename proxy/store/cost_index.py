"""Cost in the store: pico-USD integers, and the cost-step indexes behind ``cost_min``/``cost_max``.

A trace's cost is kept as an integer of pico-USD (``cost_pusd``, summed with ``HINCRBY`` as
spans are recorded: exact, and atomic in the trace's slot). A list filtered by cost must not
scan every trace, yet it must stay newest first like every list, so a single sorted set scored
by cost would not do. Instead a priced trace is listed, scored by its creation time like every
other index, in one index per step of ``COST_STEPS`` (decades from $0.00001 to $100):
``idx:cost_ge:<step>`` when its cost is at least the step, ``idx:cost_le:<step>`` when at most.
``cost_min`` then walks ``cost_ge`` of the largest step not above it, ``cost_max`` walks
``cost_le`` of the smallest step not below it (whichever is smaller when both are given,
among the other filters' indexes): a superset of the matches within a factor of ten of the
bound, and every candidate is checked against its record, as always. A trace's cost only
grows, so it joins ``cost_ge`` indexes as it crosses steps and never leaves one; it may leave a
``cost_le`` range, and that entry stays behind until retention prunes it (the record check
skips it). Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from proxy.store.keys import Keys

PICO = 10**12
COST_STEPS = ("0.00001", "0.0001", "0.001", "0.01", "0.1", "1", "10", "100")
_STEPS = tuple((step, round(float(step) * PICO)) for step in COST_STEPS)


def to_pico(usd: float) -> int:
    return round(usd * PICO)


def cost_indexes(keys: Keys, total_pico: int) -> list[str]:
    """Every cost-step index a trace of this total cost belongs in."""
    names = [keys.index("cost_ge", step) for step, pico in _STEPS if total_pico >= pico]
    return names + [keys.index("cost_le", step) for step, pico in _STEPS if total_pico <= pico]


def cost_drivers(keys: Keys, cost_min: float | None, cost_max: float | None) -> list[str]:
    """The cost-step indexes holding every trace of the range (none when no step bounds it)."""
    drivers = []
    if cost_min is not None:
        below = [step for step, pico in _STEPS if pico <= to_pico(cost_min)]
        if below:
            drivers.append(keys.index("cost_ge", below[-1]))
    if cost_max is not None:
        above = [step for step, pico in _STEPS if pico >= to_pico(cost_max)]
        if above:
            drivers.append(keys.index("cost_le", above[0]))
    return drivers
