"""``GET /feedback.js``: the ``<feedback-widget>`` script (docs/reference.md §14).

The script is a static file in ``assets/``, with the configured feedback reasons written into
it once at start (so the widget offers exactly the reasons the proxy accepts, without a second
request). Its bytes, their gzip and a strong ETag are computed once; a request is answered
from memory: 304 when ``If-None-Match`` names the current ETag, else the script. Any origin
may read it (it is public code, and a page loads it with ``<script src>`` from another host).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.resources import files

import orjson
from aiohttp import web

ASSET = "feedback.js"
REASONS_MARK = b"/*@reasons*/[]"
CACHE_CONTROL = "public, max-age=600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Script:
    """One encoding of the script: its bytes and their strong ETag."""

    body: bytes
    etag: str
    encoding: str | None


def widget_scripts(reasons: Iterable[str]) -> tuple[Script, Script]:
    """(plain, gzip) script with ``reasons`` written in."""
    source = files("proxy.gateway").joinpath("assets", ASSET).read_bytes()
    if REASONS_MARK not in source:
        raise RuntimeError(f"{ASSET}: the reasons mark {REASONS_MARK!r} is missing")
    body = source.replace(REASONS_MARK, orjson.dumps(list(reasons)), 1)
    digest = hashlib.sha256(body).hexdigest()[:32]
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    return Script(body, f'"{digest}"', None), Script(packed, f'"{digest}-gz"', "gzip")


def widget_handler(reasons: Iterable[str]) -> Handler:
    """The route's handler, with the script built once for these reasons."""
    plain, packed = widget_scripts(reasons)

    async def feedback_script(request: web.Request) -> web.StreamResponse:
        """The widget script, or 304 when the client's copy is current."""
        script = packed if _accepts_gzip(request) else plain
        headers = _headers(script)
        if _matches(request.headers.get("If-None-Match"), script.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=script.body, headers=headers)

    return feedback_script


def _headers(script: Script) -> dict[str, str]:
    headers = {
        "Content-Type": "text/javascript; charset=utf-8",
        "ETag": script.etag,
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if script.encoding:
        headers["Content-Encoding"] = script.encoding
    return headers


def _accepts_gzip(request: web.Request) -> bool:
    """gzip listed in Accept-Encoding and not refused with ``q=0``."""
    for item in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in {"q=0", "q=0.0", "q=0.00", "q=0.000"}
    return False


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison against any listed tag, or ``*``."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
