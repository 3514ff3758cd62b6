"""Server-sent events decoder (placeholder; being written)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None
