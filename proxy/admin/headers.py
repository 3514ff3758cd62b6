"""Headers on every answer of the admin listener (API, metrics and the Monitor page alike).

``Content-Security-Policy: default-src 'self'`` lets a page load only what this listener
serves: no script, style or image from another origin, and no inline script or style, so
even text that slipped past escaping could not run. The page is never framed
(``X-Frame-Options``), types are never sniffed, and no URL (a filter, a cursor) leaks to
another site in a ``Referer``.
"""

from __future__ import annotations

from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every answer, errors and streamed exports included."""
    response.headers.update(SECURITY_HEADERS)
