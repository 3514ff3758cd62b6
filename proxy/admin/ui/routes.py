"""The Monitor page on the admin application: templates, static files, routes, HTML errors.

``mount_ui`` is called by ``proxy.admin.app.create_admin_app``. Templates are Jinja2 through
aiohttp-jinja2 with autoescape on and ``StrictUndefined`` (a template naming a missing field
fails the test that renders it instead of printing nothing); optional record fields are read
with ``.get``. Assets are served from the package (``/ui/static/``): no CDN, no build step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.admin.ui.datasets_view import dataset_page, datasets_page, export_rows, post_row
from proxy.admin.ui.forms import annotation_text
from proxy.admin.ui.guard import is_ui_path
from proxy.admin.ui.login_view import login, login_page, logout
from proxy.admin.ui.present import FILTERS
from proxy.admin.ui.render import page
from proxy.admin.ui.trace_view import post_dataset, post_feedback, trace_page
from proxy.admin.ui.traces_view import traces_page
from proxy.admin.ui.trends_view import trends_page
from proxy.core.errors import ProxyError, StoreUnavailable

STATIC_DIR = Path(__file__).parent / "static"
_FILTERS = {**FILTERS, "annotation_text": annotation_text}


def mount_ui(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("proxy.admin.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
        filters=cast(
            dict[str, Callable[..., str]], {**FILTERS, "annotation_text": annotation_text}
        ),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["STATUS_NAMES"] = ("empty", "filled")
    router = app.router
    router.add_get("/", _to_ui)
    router.add_get("/ui", _to_ui)
    router.add_get("/ui/", _to_ui)
    router.add_static("/ui/static", STATIC_DIR, append_version=False)
    router.add_get("/ui/login", login_page)
    router.add_post("/ui/login", login)
    router.add_post("/ui/logout", logout)
    router.add_get("/ui/traces", traces_page)
    router.add_get("/ui/traces/{trace_id}", trace_page)
    router.add_post("/ui/traces/{trace_id}/feedback", post_feedback)
    router.add_post("/ui/traces/{trace_id}/datasets", post_dataset)
    router.add_get("/ui/datasets", datasets_page)
    router.add_get("/ui/datasets/{name}", dataset_page)
    router.add_get("/ui/datasets/{name}/export", export_rows)
    router.add_post("/ui/datasets/{name}/rows/{row_id}", post_row)
    router.add_get("/ui/trends", trends_page)


async def _to_ui(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/traces")


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On the page's paths, errors are pages (same status and message as the API's JSON)."""
    if not is_ui_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except ProxyError as error:
        return _error_page(request, error.status, error.message)
    except StoreUnavailable:
        return _error_page(request, 503, "Redis is unreachable; try again shortly.")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_page(request, error.status, error.reason)


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    context = {"status": status, "message": message}
    return page("error.html", request, context, status=status)
