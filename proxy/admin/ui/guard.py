"""Who may use the Monitor page, and which writes it accepts.

Reading: without ``admin.token`` the page is open (the listener is then on loopback, like the
API). With a token, a page needs the session cookie ``fp_session`` (set by signing in,
``HttpOnly``, ``SameSite=Strict``; see ``signing``) or the API's bearer header; a GET without
either is sent to ``/ui/login``, any other method answers 401. The sign-in page and the static
files are open.

Writing: every form POST must echo the browser's ``fp_csrf`` cookie in its hidden ``csrf``
field (double submit: another site can neither read the cookie nor, with ``SameSite=Strict``,
make the browser send it), and must not come from another origin (``Origin`` and
``Sec-Fetch-Site`` when the browser sends them). A refused write changes nothing (403).
"""

from __future__ import annotations

import hmac
import time
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from proxy.admin.ui.signing import (
    SESSION_TTL_S,
    new_csrf_value,
    new_session,
    same_value,
    session_key,
    session_valid,
)
from proxy.core.errors import ProxyError, Unauthorized

SESSION_COOKIE = "fp_session"
CSRF_COOKIE = "fp_csrf"
CSRF_FIELD = "csrf"
LOGIN_PATH = "/ui/login"
_OPEN_UI_PREFIXES = ("/ui/static/",)
_NEW_CSRF = web.RequestKey("ui_new_csrf", str)
_CROSS_SITE = frozenset({"cross-site", "same-site"})


class Forbidden(ProxyError):
    status: ClassVar[int] = 403
    kind: ClassVar[str] = "forbidden"
    type: ClassVar[str] = "permission_error"


def is_ui_path(path: str) -> bool:
    """The page's paths (``/`` only redirects to it)."""
    return path in ("/", "/ui") or path.startswith("/ui/")


def check_ui_access(request: web.Request, token: str) -> None:
    """Raises a redirect to the sign-in page (GET) or 401 when a token is set and the request
    carries neither a valid session nor the bearer header."""
    path = request.path
    if path in ("/", LOGIN_PATH) or path.startswith(_OPEN_UI_PREFIXES) or signed_in(request, token):
        return
    if request.method in ("GET", "HEAD"):
        raise web.HTTPSeeOther(f"{LOGIN_PATH}?{_next_query(request)}")
    raise Unauthorized("Sign in first: the session is missing or has expired.")


def _next_query(request: web.Request) -> str:
    return urlencode({"next": request.rel_url.path_qs})


def signed_in(request: web.Request, token: str) -> bool:
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie and session_valid(session_key(token), cookie, time.time()):
        return True
    sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sent, f"Bearer {token}".encode())


def start_session(response: web.StreamResponse, request: web.Request, token: str) -> None:
    value = new_session(session_key(token), time.time())
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_TTL_S, path="/", httponly=True,
        samesite="Strict", secure=request.secure,
    )  # fmt: skip


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def csrf_value(request: web.Request) -> str:
    """The value this browser's forms echo: its cookie, or a new one the answer will set."""
    current = request.cookies.get(CSRF_COOKIE) or request.get(_NEW_CSRF)
    if not current:
        current = request[_NEW_CSRF] = new_csrf_value()
    return current


def set_new_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the CSRF cookie that ``csrf_value`` made for this page, if it made one."""
    value = request.get(_NEW_CSRF)
    if value:
        response.set_cookie(
            CSRF_COOKIE, value, path="/ui", httponly=True, samesite="Strict",
            secure=request.secure,
        )  # fmt: skip


async def checked_form(request: web.Request) -> MultiDictProxy[str]:
    """The POSTed form fields, once the request is shown to come from the page itself."""
    _same_origin(request)
    form = await request.post()
    sent = form.get(CSRF_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or not cookie or not same_value(sent, cookie):
        raise Forbidden("This form is stale or came from another page: reload it and try again.")
    return _text_fields(form)


def _text_fields(form: MultiDictProxy[Any]) -> MultiDictProxy[str]:
    """The text fields (the page's forms upload no files)."""
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
        raise Forbidden("Writes are accepted from this page's own origin only.")
    if request.headers.get("Sec-Fetch-Site", "same-origin") in _CROSS_SITE:
        raise Forbidden("Writes are accepted from this page's own origin only.")
