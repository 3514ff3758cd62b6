"""A trace for a block of calls: the request headers that group calls of an SDK client.

``Trace.client(sdk_client)`` returns the SDK's own copy of the client with these headers as
defaults (``with_options(default_headers=...)``, which both official SDKs merge with the
client's other headers); ``Trace.headers()`` gives them for one call's ``extra_headers``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar


class _WithOptions(Protocol):
    def with_options(self, *, default_headers: Mapping[str, str]) -> Any: ...


Client = TypeVar("Client", bound=_WithOptions)


def _new_trace_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Trace:
    """Calls sent with these headers become spans of one trace (``trace_id``, new by default).

    ``attributes`` are merged into the trace's attributes, ``tags`` added to its tags. Header
    values must be ASCII (the SDKs send ``str`` headers as ASCII); attributes are sent as JSON
    with non-ASCII characters escaped, so they may hold any text.
    """

    trace_id: str = field(default_factory=_new_trace_id)
    name: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    parent_span_id: str | None = None

    def headers(self) -> dict[str, str]:
        """The request headers of this trace (for ``extra_headers`` or ``default_headers``)."""
        headers = {"X-Trace-Id": self.trace_id}
        for header, value in (
            ("X-Trace-Name", self.name),
            ("X-Session-Id", self.session_id),
            ("X-User-Id", self.user_id),
            ("X-Parent-Span-Id", self.parent_span_id),
        ):
            if value is not None:
                headers[header] = value
        if self.tags:
            if any("," in tag for tag in self.tags):
                raise ValueError("tags: a tag sent in X-Trace-Tags may not contain a comma")
            headers["X-Trace-Tags"] = ",".join(self.tags)
        if self.attributes:
            headers["X-Trace-Attributes"] = json.dumps(dict(self.attributes), separators=(",", ":"))
        for header, value in headers.items():
            if not value.isascii():
                raise ValueError(f"{header}: must be ASCII to travel as a header")
        return headers

    def client(self, sdk_client: Client) -> Client:
        """A copy of an ``openai``/``anthropic`` client (sync or async) whose every call joins
        this trace; the original client is unchanged."""
        copy: Client = sdk_client.with_options(default_headers=self.headers())
        return copy
