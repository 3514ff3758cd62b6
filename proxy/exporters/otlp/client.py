"""One OTLP/HTTP request: a gzipped protobuf POST to ``{endpoint}/v1/traces`` or ``/v1/logs``.

Its own ``aiohttp.ClientSession`` (not the upstream one: a hung collector must never take
connections that proxied calls need), a whole-request timeout of ``export.otlp.timeout`` (not
aiohttp's 5 minutes), and the one place where client failures become :class:`SendFailed`.
What may be retried follows OTLP/HTTP: 429, 502, 503, 504, plus any other 5xx (a collector's
fault, the data is fine) and every connection failure or timeout; any other status means the
collector will never take this payload, so retrying cannot help.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
_RETRYABLE_4XX = frozenset({408, 429})
GZIP_LEVEL = 1  # OTLP payloads shrink ~5x already at level 1; higher levels cost CPU


class SendFailed(Exception):
    """An export request did not succeed; ``retryable`` says whether sending again may help.

    ``kind`` is a low-cardinality reason for the metrics: timeout, connect, status."""

    def __init__(self, kind: str, detail: str, *, retryable: bool) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.retryable = retryable


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


class OtlpClient:
    """Sends encoded OTLP requests to one collector."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        headers: Mapping[str, str],
    ) -> None:
        self._session = session
        self._base = endpoint.rstrip("/")
        self._headers = {
            **headers,
            "content-type": "application/x-protobuf",
            "content-encoding": "gzip",
        }

    async def send(self, path: str, payload: bytes) -> bytes:
        """POST ``payload`` gzipped; the response body (a partial-success message or empty)."""
        body = gzip.compress(payload, compresslevel=GZIP_LEVEL)
        try:
            async with self._session.post(
                self._base + path, data=body, headers=self._headers, allow_redirects=False
            ) as response:
                answer = await response.read()
                if response.status // 100 != 2:
                    raise SendFailed(
                        "status",
                        f"HTTP {response.status}",
                        retryable=_retryable_status(response.status),
                    )
                return answer
        except TimeoutError as exc:
            raise SendFailed("timeout", "no answer in time", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise SendFailed("connect", type(exc).__name__, retryable=True) from exc


@asynccontextmanager
async def export_session(request_seconds: float) -> AsyncIterator[aiohttp.ClientSession]:
    """The exporter's own client session: a small pool, the whole request bounded."""
    connector = aiohttp.TCPConnector(limit=4)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=request_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    try:
        yield session
    finally:
        await session.close()
        await asyncio.sleep(0)  # let the connector's transports close before the loop moves on
