"""``X-Capture``: a request may ask that its span keep no content (docs/reference.md §13).

``X-Capture: metadata`` keeps the span's model, usage, timing and cost but stores neither its
input nor its output, whatever ``capture.bodies`` says. Any other value is a 400 naming the
header, before anything is forwarded. The header never reaches the upstream (``headers``).
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from proxy.config import CaptureSettings
from proxy.core.errors import BadRequest

CAPTURE_HEADER = "x-capture"
METADATA = "metadata"


def capture_for(headers: Mapping[str, str], capture: CaptureSettings) -> CaptureSettings:
    """The capture settings for one request: the configured ones, or without bodies."""
    value = headers.get(CAPTURE_HEADER)
    if value is None:
        return capture
    if value.strip().lower() != METADATA:
        raise BadRequest(
            f"X-Capture: must be {METADATA} (store the span without input and output)",
            code="invalid_header",
            param="X-Capture",
        )
    return replace(capture, bodies=False) if capture.bodies else capture
