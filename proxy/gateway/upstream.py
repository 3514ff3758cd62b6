"""Upstreams: where each route goes, the one shared client session, and error translation.

The target URL is built only from configuration plus the request path, so no header can make
the proxy connect elsewhere. aiohttp's client exceptions are translated to the proxy's error
family in exactly one place (``translate_errors``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

import aiohttp

from proxy.config import Settings, UpstreamSettings
from proxy.core.errors import BadRequest, NotFound, UpstreamTimeout, UpstreamUnreachable

# Longest upstream response header line accepted (aiohttp's default, 8190, is too tight for
# some providers' long trace and rate-limit headers).
UPSTREAM_MAX_HEADER_BYTES = 65536


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str  # no trailing slash
    base_path: str  # the base URL's own path, e.g. "" or "/openai"
    timeout: aiohttp.ClientTimeout

    @classmethod
    def from_settings(cls, name: str, settings: UpstreamSettings) -> Upstream:
        base = settings.base_url.rstrip("/")
        path = base.split("://", 1)[1].partition("/")[2]
        # connect covers waiting for a free pooled connection too, so a full pool is a 502
        # after connect_timeout rather than an endless wait.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        return cls(name=name, base_url=base, base_path=f"/{path}" if path else "", timeout=timeout)


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    tail: str  # raw path and query after the route prefix, starting with "/" or "?" or empty

    @property
    def url(self) -> str:
        return self.upstream.base_url + self.tail

    @property
    def upstream_path(self) -> str:
        """The path as sent upstream, without the query (what a span records)."""
        return self.upstream.base_path + self.tail.partition("?")[0]


class Router:
    """Maps ``/{upstream}/{path}`` and ``/v1/{path}`` to configured upstreams, nothing else."""

    def __init__(self, upstreams: Mapping[str, UpstreamSettings], default: str) -> None:
        self._upstreams = {name: Upstream.from_settings(name, u) for name, u in upstreams.items()}
        self._default = self._upstreams[default]

    def resolve(self, raw_path: str) -> Route:
        if _has_dot_segment(raw_path):
            raise BadRequest(
                "path: must not contain . or .. segments, also not percent-encoded (once or "
                "more) or delimited by a backslash, %2F, %5C or ;",
                code="invalid_path",
            )
        end = _segment_end(raw_path)
        name = raw_path[1:end]
        if name == "v1":
            return Route(self._default, raw_path)
        upstream = self._upstreams.get(name)
        if upstream is None or not raw_path.startswith("/"):
            names = sorted(self._upstreams)
            raise NotFound(
                f"No upstream for this path. Use /{{upstream}}/... with one of: "
                f"{', '.join(names)}; or /v1/... for the default upstream.",
                code="unknown_upstream",
                upstreams=names,
            )
        return Route(upstream, raw_path[end:])


_DECODE_ROUNDS = 3  # %252e is %2e is "."; an upstream (or one behind it) may decode each layer
_SEGMENT_DELIMITERS = re.compile(r"[/\\]")  # some servers split on backslash too


def _has_dot_segment(raw_path: str) -> bool:
    """``.``/``..`` segments could climb out of a base URL's path at an upstream that decodes
    more than we do: so they are looked for at every percent-decoding layer, with backslash as a
    delimiter too and ``;params`` cut off a segment (``..;/`` is ``../`` to some servers)."""
    path = raw_path.partition("?")[0]
    if "." not in path and "%" not in path:
        return False
    for _ in range(_DECODE_ROUNDS + 1):
        if any(_is_dot(segment) for segment in _SEGMENT_DELIMITERS.split(path)):
            return True
        decoded = unquote(path, errors="surrogateescape")
        if decoded == path:
            return False
        path = decoded
    return True  # still decoding after every round: refuse rather than guess


def _is_dot(segment: str) -> bool:
    return segment.partition(";")[0] in (".", "..")


def _segment_end(raw_path: str) -> int:
    """Index where the first path segment ends (at "/" or "?"), or the length."""
    for i in range(1, len(raw_path)):
        if raw_path[i] in "/?":
            return i
    return len(raw_path)


@asynccontextmanager
async def client_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The one pooled session for every upstream call.

    No total timeout (long streams are normal; per-upstream connect and read timeouts apply),
    no cookie jar (cookies of one client must never reach another), no automatic decompression
    (bytes pass as the upstream sent them, so Content-Encoding always matches), and no headers
    the client did not send.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.proxy.max_connections, ttl_dns_cache=300, enable_cleanup_closed=False
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        trust_env=False,
        max_line_size=UPSTREAM_MAX_HEADER_BYTES,
        max_field_size=UPSTREAM_MAX_HEADER_BYTES,
    )
    try:
        yield session
    finally:
        await session.close()


@contextmanager
def translate_errors(upstream: str) -> Iterator[None]:
    """Turn aiohttp client failures before the response started into 502 / 504."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError:
        raise UpstreamUnreachable(
            f"Upstream {upstream!r} did not accept a connection in time.", code="connect_timeout"
        ) from None
    except (TimeoutError, aiohttp.SocketTimeoutError):
        raise UpstreamTimeout(
            f"Upstream {upstream!r} sent nothing within its read timeout.", code="read_timeout"
        ) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamUnreachable(
            f"Upstream {upstream!r} is unreachable: {type(exc).__name__}.",
            code="upstream_unreachable",
        ) from None
    except aiohttp.ClientError as exc:  # e.g. an answer that is not valid HTTP
        raise UpstreamUnreachable(
            f"Upstream {upstream!r} sent an invalid response: {type(exc).__name__}.",
            code="bad_upstream_response",
        ) from None
