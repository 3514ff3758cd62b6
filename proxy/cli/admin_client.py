"""A small client of the admin API for the ``traces`` and ``export`` commands.

Every failure becomes ``AdminError`` with one line a person can act on: the admin API is not
running, the token is wrong, the dataset does not exist, a parameter is bad, Redis is down.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import orjson

from proxy.config import Settings

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0
CHUNK_BYTES = 64 * 1024
PAGE_LIMIT = 500  # the admin API's largest page
TOKEN_HINT = "set admin.token or FEEDBACK_PROXY_ADMIN__TOKEN to the server's admin token"

Params = Sequence[tuple[str, str]]
Progress = Callable[[int, int, bool], None]  # (rows, bytes, done)


class AdminError(Exception):
    """One line for stderr; the command exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class AdminTarget:
    url: str
    token: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def admin_target(settings: Settings, url: str | None = None) -> AdminTarget:
    """The admin API of these settings (a wildcard host means this machine), or ``url``."""
    if url is None:
        host = settings.admin.host
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{settings.admin.port}"
    return AdminTarget(url.rstrip("/"), settings.admin.token)


def _session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
    return aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())


def _unreachable(target: AdminTarget, exc: BaseException) -> AdminError:
    detail = str(exc) or type(exc).__name__
    return AdminError(
        f"cannot reach the admin API at {target.url}: {detail} — is `feedback-proxy serve` running?"
    )


def _broken(target: AdminTarget, exc: BaseException) -> AdminError:
    return AdminError(f"the admin API at {target.url} broke off the answer: {exc}")


async def _error_for(response: aiohttp.ClientResponse, what: str) -> AdminError:
    """The one line for a non-200 answer, using the API's own message where it has one."""
    message = await _api_message(response)
    status = response.status
    if status == 401:
        return AdminError(f"the admin API refused the request (401 unauthorized): {TOKEN_HINT}")
    if status == 404:
        return AdminError(f"{what}: not found (404): {message}")
    if status == 400:
        return AdminError(f"bad request (400): {message}")
    if status == 503:
        return AdminError(f"the admin API cannot reach Redis (503): {message}")
    return AdminError(f"the admin API answered {status}: {message}")


async def _api_message(response: aiohttp.ClientResponse) -> str:
    raw = await response.content.read(64 * 1024)
    try:
        body = orjson.loads(raw)
        return str(body["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip()[:200] or response.reason or "no detail"


# -- GET /api/traces ---------------------------------------------------------------------------


async def list_traces(target: AdminTarget, params: Params) -> dict[str, Any]:
    """One page of ``GET /api/traces``: ``{"traces": [...], "next_cursor": ...}``."""
    return await _get_json(target, "/api/traces", params, "traces")


async def _get_json(target: AdminTarget, path: str, params: Params, what: str) -> dict[str, Any]:
    try:
        async with (
            _session() as session,
            session.get(target.url + path, params=list(params), headers=target.headers()) as resp,
        ):
            if resp.status != 200:
                raise await _error_for(resp, what)
            body = orjson.loads(await resp.read())
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise _unreachable(target, exc) from None
    except aiohttp.ClientError as exc:
        raise _broken(target, exc) from None
    except orjson.JSONDecodeError:
        raise AdminError(f"the admin API at {target.url} did not answer JSON") from None
    if not isinstance(body, dict):
        raise AdminError(f"the admin API at {target.url} answered an unexpected shape")
    return body


# -- GET /api/datasets/{name}/rows ---------------------------------------------------------------


def _rows_path(dataset: str) -> str:
    return f"/api/datasets/{quote(dataset, safe='')}/rows"


async def export_dataset(
    target: AdminTarget,
    dataset: str,
    form: str,
    sink: IO[bytes],
    annotation_status: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the dataset to ``sink`` as jsonl, csv or one JSON array; the number of rows."""
    status = [("annotation_status", annotation_status)] if annotation_status else []
    if form == "json":
        return await _export_json(target, dataset, sink, status, progress)
    return await _export_stream(target, dataset, form, sink, status, progress)


async def _export_stream(
    target: AdminTarget,
    dataset: str,
    form: str,
    sink: IO[bytes],
    status: Params,
    progress: Progress | None,
) -> int:
    """JSONL/CSV: the bytes go to ``sink`` as they arrive."""
    counter = _RowCounter(form)
    params = [("format", form), *status]
    try:
        async with (
            _session() as session,
            session.get(
                target.url + _rows_path(dataset), params=params, headers=target.headers()
            ) as resp,
        ):
            if resp.status != 200:
                raise await _error_for(resp, f"dataset {dataset}")
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                sink.write(chunk)
                counter.feed(chunk)
                if progress:
                    progress(counter.rows, counter.bytes, False)
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise _unreachable(target, exc) from None
    except aiohttp.ClientError as exc:
        raise _broken(target, exc) from None
    sink.flush()
    if progress:
        progress(counter.rows, counter.bytes, True)
    return counter.rows


async def _export_json(
    target: AdminTarget, dataset: str, sink: IO[bytes], status: Params, progress: Progress | None
) -> int:
    """JSON: follow ``next_cursor`` page by page, writing one array. The ``[`` waits for the
    first page, so an error (no such dataset) is all the command prints."""
    rows = size = 0
    cursor: str | None = None
    while True:
        params = [("format", "json"), ("limit", str(PAGE_LIMIT)), *status]
        params += [("cursor", cursor)] if cursor else []
        page = await _get_json(target, _rows_path(dataset), params, f"dataset {dataset}")
        if cursor is None:
            sink.write(b"[")
        for row in page.get("rows", []):
            data = (b"," if rows else b"") + orjson.dumps(row)
            sink.write(data)
            rows, size = rows + 1, size + len(data)
        if progress:
            progress(rows, size, False)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    sink.write(b"]\n")
    sink.flush()
    if progress:
        progress(rows, size + 3, True)
    return rows


class _RowCounter:
    """Rows seen in a JSONL or CSV stream (CSV: line ends outside quotes, minus the header)."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.bytes = 0
        self._lines = 0
        self._in_quotes = False

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self.form != "csv":
            self._lines += chunk.count(b"\n")
            return
        for i, part in enumerate(chunk.split(b'"')):
            if i:
                self._in_quotes = not self._in_quotes
            if not self._in_quotes:
                self._lines += part.count(b"\n")

    @property
    def rows(self) -> int:
        return max(0, self._lines - 1) if self.form == "csv" else self._lines


class TerminalProgress:
    """``rows, bytes`` on one rewritten stderr line, at most every ``interval`` seconds."""

    def __init__(self, stream: IO[str] = sys.stderr, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0

    def __call__(self, rows: int, size: int, done: bool) -> None:
        now = time.monotonic()
        if not done and now - self._last < self.interval:
            return
        self._last = now
        end = "\n" if done else ""
        self.stream.write(f"\r{rows} rows, {_human(size)}{' — done' if done else ''}\x1b[K{end}")
        self.stream.flush()


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# -- the trace table -----------------------------------------------------------------------------

# (header, width cap) of each column of `feedback-proxy traces`.
_COLUMNS = (
    ("created_at", 24),
    ("trace_id", 40),
    ("feedback", 8),
    ("rating", 6),
    ("category", 16),
    ("reason", 20),
    ("models", 28),
    ("spans", 5),
    ("cost_usd", 12),
    ("annotation", 10),
)


def format_traces(page: dict[str, Any]) -> str:
    """A fixed-width table of one ``GET /api/traces`` page, then the next cursor."""
    traces = page.get("traces") or []
    cursor = page.get("next_cursor")
    tail = f"next page: --cursor {cursor}\n" if cursor else "(no more pages)\n"
    if not traces:
        return "no matching traces\n" + tail
    cells = [_cells(summary) for summary in traces]
    widths = [
        min(cap, max(len(header), *(len(row[i]) for row in cells)))
        for i, (header, cap) in enumerate(_COLUMNS)
    ]
    lines = [_line([header for header, _ in _COLUMNS], widths)]
    lines += [_line(row, widths) for row in cells]
    return "\n".join(lines) + "\n" + tail


def _cells(summary: dict[str, Any]) -> list[str]:
    attrs = summary.get("attributes") or {}
    return [
        _text(summary.get("created_at")),
        _text(summary.get("trace_id")),
        _text(attrs.get("user_feedback")),
        _text(attrs.get("user_feedback_rating")),
        _text(attrs.get("user_feedback_category")),
        _text(attrs.get("feedback_reason")),
        ",".join(summary.get("models") or []),
        _text(summary.get("span_count")),
        _usd(summary.get("cost_usd")),
        _text(summary.get("annotation_status")),
    ]


def _usd(value: Any) -> str:
    """A cost to six decimals (a millionth of a dollar); "-" when unknown."""
    return f"{value:.6f}" if isinstance(value, int | float) else "-"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())  # one line per trace, whatever the value holds


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(_fit(cell, width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _fit(cell: str, width: int) -> str:
    return cell.ljust(width) if len(cell) <= width else cell[: width - 1] + "…"
