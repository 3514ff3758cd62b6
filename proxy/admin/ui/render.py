"""One way to answer a page: the template with the context every page shares (the CSRF value
its forms echo, whether sign-in is on, where we are)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from proxy.admin.services import ADMIN
from proxy.admin.ui.guard import csrf_value, set_new_csrf_cookie, signed_in


def page(
    template: str, request: web.Request, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    token = request.app[ADMIN].settings.admin.token
    shared = {
        "csrf": csrf_value(request),
        "auth_on": bool(token),
        "signed_in": bool(token) and signed_in(request, token),
        "path": request.path,
    }
    response = aiohttp_jinja2.render_template(
        template, request, {**shared, **context}, status=status
    )
    set_new_csrf_cookie(request, response)
    return response
