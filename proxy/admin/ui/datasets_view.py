"""``/ui/datasets`` and ``/ui/datasets/{name}``: the datasets, and one dataset's annotation
queue with its editor.

Rows are read with the store calls of ``GET /api/datasets/{name}/rows`` (same
``annotation_status`` filter and cursor, ``parse_row_query``), written with the one row patch
of ``PATCH .../rows/{row_id}`` (``apply_row_patch``: the trace's annotation status follows
its row), and exported by that route's own handler.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web

from proxy.admin.api.datasets import apply_row_patch, list_rows, parse_row_patch, parse_row_query
from proxy.admin.services import ADMIN
from proxy.admin.ui.forms import annotation_from_text
from proxy.admin.ui.guard import checked_form
from proxy.admin.ui.render import page
from proxy.core.errors import BadRequest, NotFound
from proxy.core.ids import DATASET_NAME, DATASET_NAME_RULE, ID_PATTERN, ID_RULE
from proxy.store.datasets import DatasetStore

PAGE_ROWS = 20
COUNT_CAP = 10_000  # rows read to count a dataset's statuses; past it the page says "at least"
LIST_COUNT_CAP = 1_000  # the same on the list page, for each of at most MAX_LISTED datasets
MAX_LISTED = 100
_ACTIONS = {"save": None, "filled": "filled", "empty": "empty"}
_ROW_PARAMS = ("annotation_status", "cursor", "limit")


@dataclass(frozen=True, slots=True)
class StatusCounts:
    empty: int
    filled: int
    capped: bool

    @property
    def total(self) -> int:
        return self.empty + self.filled


async def status_counts(store: DatasetStore, name: str, cap: int = COUNT_CAP) -> StatusCounts:
    """Rows per annotation status, reading at most ``cap`` rows (``capped`` says so)."""
    counts = {"empty": 0, "filled": 0}
    seen = 0
    async for _, row in store.walk(name):
        status = row.get("annotation_status")
        counts[status if status in counts else "empty"] += 1
        seen += 1
        if seen >= cap:
            return StatusCounts(counts["empty"], counts["filled"], True)
    return StatusCounts(counts["empty"], counts["filled"], False)


async def datasets_page(request: web.Request) -> web.Response:
    store = request.app[ADMIN].datasets
    datasets = sorted(await store.list_datasets(), key=lambda d: str(d["name"]))
    counted = datasets[:MAX_LISTED]
    counts = await asyncio.gather(
        *(status_counts(store, str(d["name"]), LIST_COUNT_CAP) for d in counted)
    )
    context = {
        "datasets": list(zip(counted, counts, strict=True)),
        "more": len(datasets) - len(counted),
    }
    return page("datasets.html", request, context)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not DATASET_NAME.fullmatch(name):
        raise NotFound(f"No dataset {name}: {DATASET_NAME_RULE}.", code="dataset_not_found")
    return name


async def dataset_page(request: web.Request) -> web.Response:
    """The annotation queue: rows in the order added, filtered by ``annotation_status``."""
    name, store = _name(request), request.app[ADMIN].datasets
    query = {k: v for k, v in request.query.items() if k in _ROW_PARAMS and v.strip()}
    unknown = sorted(set(request.query) - {*_ROW_PARAMS, "notice"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown parameter", code="invalid_parameter")
    status, limit, cursor, _ = parse_row_query({"limit": str(PAGE_ROWS), **query})
    if not await store.exists(name):
        raise NotFound(f"No dataset {name}.", code="dataset_not_found")
    rows, next_cursor = await store.rows_page(name, status, limit, cursor)
    context = {
        "name": name,
        "rows": rows,
        "status": status,
        "counts": await status_counts(store, name),
        "here": urlencode(query),
        "next_url": _url(name, {**query, "cursor": next_cursor}) if next_cursor else None,
        "first_url": _url(name, {k: v for k, v in query.items() if k != "cursor"})
        if cursor
        else None,
        "export_query": urlencode({"annotation_status": status} if status else {}),
        "notice": "Saved." if request.query.get("notice") == "saved" else None,
    }
    return page("dataset.html", request, context)


def _url(name: str, query: dict[str, str]) -> str:
    base = f"/ui/datasets/{quote(name, safe='')}"
    return f"{base}?{urlencode(query)}" if query else base


async def post_row(request: web.Request) -> web.Response:
    """The annotation editor: save the annotation, and with **Mark filled** (or **Reopen**)
    the row's (and its trace's) annotation status."""
    form = await checked_form(request)
    name, row_id = _name(request), request.match_info["row_id"]
    if not ID_PATTERN.fullmatch(row_id):
        raise BadRequest(f"row_id: {ID_RULE}")
    action = form.get("action", "save")
    if action not in _ACTIONS:
        raise BadRequest("action: must be save, filled or empty", code="invalid_body")
    change: dict[str, object] = {"annotation": annotation_from_text(form.get("annotation", ""))}
    if _ACTIONS[action]:
        change["annotation_status"] = _ACTIONS[action]
    await apply_row_patch(request.app[ADMIN], name, row_id, parse_row_patch(change))
    back = {k: v for k, v in parse_qsl(form.get("here", "")) if k in _ROW_PARAMS}
    raise web.HTTPSeeOther(_url(name, {**back, "notice": "saved"}) + f"#row-{quote(row_id)}")


async def export_rows(request: web.Request) -> web.StreamResponse:
    """JSONL or CSV of the dataset: the API route's own export, behind the page's sign-in."""
    _name(request)
    if request.query.get("format") not in ("jsonl", "csv"):
        raise BadRequest("format: must be jsonl or csv", code="invalid_parameter")
    return await list_rows(request)
