"""``/ui/login`` and ``/ui/logout``: the one place the admin token is typed in.

The token travels only in the sign-in form's POST body and is compared in constant time; the
answer sets the session cookie (``guard.start_session``) and redirects, so the token is never
in a page, a URL or the browser's history.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.admin.services import ADMIN
from proxy.admin.ui.guard import checked_form, end_session, signed_in, start_session
from proxy.admin.ui.render import page

HOME = "/ui/traces"


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of the page, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return HOME


async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.app[ADMIN].settings.admin.token
    if not token or signed_in(request, token):
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    context = {"next": _next(request.query.get("next")), "error": None}
    return page("login.html", request, context)


async def login(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    token = request.app[ADMIN].settings.admin.token
    target = _next(form.get("next"))
    if not token:
        raise web.HTTPSeeOther(target)
    sent = form.get("token", "").strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sent, token.encode()):
        context = {"next": target, "error": "That token is not the admin token."}
        return page("login.html", request, context, status=401)
    response = web.HTTPSeeOther(target)
    start_session(response, request, token)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await checked_form(request)
    response = web.HTTPSeeOther("/ui/login")
    end_session(response)
    raise response
