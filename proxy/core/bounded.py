"""A set with a fixed capacity, for the per-process caches that must not grow with traffic.

A sidecar lives for weeks and sees an unbounded stream of session IDs, user IDs and traces.
Every in-process cache keyed by such values forgets its oldest entries once it holds
``capacity`` of them, so its memory is the same after a day as after a minute. A forgotten
entry only costs one idempotent Redis command the next time it comes up (the caches exist to
skip repeated ``SADD``/``HEXISTS``, never to be the source of truth).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class BoundedSet(Generic[T]):
    """Remembers at most ``capacity`` items; adding one more forgets the oldest added."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._capacity = capacity
        # OrderedDict, not dict: popping the oldest is O(1) (a dict's first live key is found
        # by scanning past the deleted ones).
        self._items: OrderedDict[T, None] = OrderedDict()

    @property
    def capacity(self) -> int:
        return self._capacity

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        if item in self._items:
            return
        self._items[item] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def update(self, items: list[T]) -> None:
        for item in items:
            self.add(item)

    def clear(self) -> None:
        self._items.clear()
