"""The process's one piece of shared mutable state: whether it is draining.

Both listeners read it (``/readyz`` answers 503 while draining); only ``Listeners.stop`` sets
it. Everything else the listeners share is built once and never reassigned.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Lifecycle:
    draining: bool = False
