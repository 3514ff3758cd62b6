"""``GET /openapi.json``: the document and the admin app's routes cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson

from proxy.admin.api.openapi import openapi_document
from proxy.admin.ui.guard import is_ui_path
from tests.conftest import StartProxy

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in _METHODS
    }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_every_route_is_documented_and_every_documented_route_exists(
    start: StartProxy,
) -> None:
    """/openapi.json lists exactly the admin API's routes: none undocumented, none that
    answers 404."""
    proxy = await start()
    app = proxy.listeners.admin.app
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one per GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if is_ui_path(path or info.get("prefix", "")):  # the Monitor page: HTML, not the API
            continue
        assert path, f"route without a path: {route!r}"
        routes.add((route.method, path))
    assert ("GET", "/openapi.json") in routes
    assert routes == _document_operations(openapi_document())


def test_document_is_valid_enough() -> None:
    """The document is OpenAPI 3.1 a client generator accepts: bearer auth (none on /healthz),
    a 200 for every operation, every $ref resolvable, every path placeholder declared."""
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The configured admin.token.",
    }
    assert document["paths"]["/healthz"]["get"]["security"] == []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                assert operation["responses"], f"{method} {path} has no responses"
                assert "200" in operation["responses"]
    refs = list(_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict), f"unresolved {ref}"
            assert part in node, f"unresolved {ref}"
            node = node[part]
    # Path parameters declared for every {placeholder}.
    for path, item in document["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert declared == wanted, path


def test_document_states_the_handler_limits() -> None:
    """The documented limits are the handlers' own (limit max 500, the enums, rating 1-5, the
    export formats), and each caller gets its own copy of the document."""
    params = {
        p["name"]: p["schema"]
        for p in openapi_document()["paths"]["/api/traces"]["get"]["parameters"]
    }
    assert params["limit"]["maximum"] == 500
    assert params["feedback"]["enum"] == ["negative", "positive"]
    assert params["annotation_status"]["enum"] == ["empty", "filled"]
    assert params["rating_min"] == {"type": "number", "minimum": 1, "maximum": 5}
    rows = openapi_document()["paths"]["/api/datasets/{name}/rows"]["get"]["parameters"]
    formats = next(p for p in rows if p["name"] == "format")
    assert formats["schema"]["enum"] == ["json", "jsonl", "csv"]
    assert openapi_document() is not openapi_document()


async def test_openapi_json_is_served_and_needs_the_token(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """GET /openapi.json answers 401 without the admin token and the document with it."""
    proxy = await start(**{"admin.token": "adm-secret"})
    url = f"{proxy.admin_url}/openapi.json"
    async with http.get(url) as resp:
        assert resp.status == 401
    async with http.get(url, headers={"Authorization": "Bearer adm-secret"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert orjson.loads(await resp.read()) == openapi_document()
