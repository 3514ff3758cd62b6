"""``PATCH /api/traces/{id}`` and ``PATCH /api/traces/{id}/spans/{span_id}``.

Same validation and the same merge as feedback headers (source ``api``). Two body forms:
flat ``{"attributes": {...}, "tags": [...]}`` and Adaline's operation form
``{"attributes": [{"operation": "create"|"delete", "key", "value"}],
"tags": [{"operation": "create"|"delete", "tag"}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from proxy.admin.api.body import json_body
from proxy.admin.responses import json_response
from proxy.admin.services import ADMIN, AdminServices
from proxy.core.errors import BadRequest, NotFound
from proxy.core.ids import ID_PATTERN, ID_RULE
from proxy.core.tags import MAX_TAGS, TAG_RULE, is_tag
from proxy.feedback.events import feedback_answer, feedback_record
from proxy.feedback.parse import (
    Feedback,
    FeedbackRules,
    feedback_tags,
    require_feedback_value,
    validate_attributes,
    validate_id,
)

MAX_BODY_BYTES = 64 * 1024
MAX_ATTRIBUTES = 256
_OPERATIONS = frozenset({"create", "delete"})


@dataclass(slots=True)
class Patch:
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    delete_attributes: list[str] = field(default_factory=list)
    delete_tags: list[str] = field(default_factory=list)


def parse_patch(body: Any, rules: FeedbackRules) -> Patch:
    """Either body form to one Patch; raises BadRequest naming the field."""
    if not isinstance(body, dict) or not set(body) <= {"attributes", "tags", "feedback_id"}:
        raise BadRequest("body: must be an object with attributes and/or tags", code="invalid_body")
    patch = Patch()
    _read_attributes(body.get("attributes", {}), patch)
    _read_tags(body.get("tags", []), patch)
    if len(patch.tags) + len(patch.delete_tags) > MAX_TAGS:
        raise BadRequest(f"tags: at most {MAX_TAGS} per request", code="invalid_body")
    if len(patch.attributes) + len(patch.delete_attributes) > MAX_ATTRIBUTES:
        raise BadRequest(f"attributes: at most {MAX_ATTRIBUTES} per request", code="invalid_body")
    patch.attributes = validate_attributes(patch.attributes, rules, datetime.now(UTC), "attributes")
    require_feedback_value(patch.attributes, "attributes")
    if not (patch.attributes or patch.tags or patch.delete_attributes or patch.delete_tags):
        raise BadRequest("body: nothing to change", code="invalid_body")
    return patch


def _read_attributes(value: Any, patch: Patch) -> None:
    if isinstance(value, dict):
        patch.attributes.update(value)
        return
    if not isinstance(value, list):
        raise BadRequest(
            "attributes: must be an object or a list of operations", code="invalid_body"
        )
    for i, op in enumerate(value):
        kind, key = _operation(op, f"attributes[{i}]", "key")
        if kind == "delete":
            patch.delete_attributes.append(key)
        elif "value" not in op:
            raise BadRequest(f"attributes[{i}].value: required for create", code="invalid_body")
        else:
            patch.attributes[key] = op["value"]


def _read_tags(value: Any, patch: Patch) -> None:
    if not isinstance(value, list):
        raise BadRequest("tags: must be a list", code="invalid_body")
    for i, item in enumerate(value):
        if isinstance(item, str):
            patch.tags.append(_tag(item, f"tags[{i}]"))
            continue
        kind, tag = _operation(item, f"tags[{i}]", "tag")
        (patch.delete_tags if kind == "delete" else patch.tags).append(_tag(tag, f"tags[{i}]"))


def _operation(op: Any, where: str, name: str) -> tuple[str, str]:
    kind = op.get("operation") if isinstance(op, dict) else None
    if not isinstance(kind, str) or kind not in _OPERATIONS:
        raise BadRequest(f"{where}.operation: must be create or delete", code="invalid_body")
    if not isinstance(op.get(name), str) or not op[name]:
        raise BadRequest(f"{where}.{name}: must be a non-empty string", code="invalid_body")
    return str(op["operation"]), str(op[name])


def _tag(tag: str, where: str) -> str:
    """One tag, held to the one tag rule (``proxy.core.tags``)."""
    if not is_tag(tag):
        raise BadRequest(f"{where}: {TAG_RULE}", code="invalid_body")
    return tag.strip()


async def patch_trace(request: web.Request) -> web.Response:
    return await _patch(request, span_id=None)


async def patch_span(request: web.Request) -> web.Response:
    return await _patch(request, span_id=request.match_info["span_id"])


async def _patch(request: web.Request, span_id: str | None) -> web.Response:
    services = request.app[ADMIN]
    trace_id = request.match_info["trace_id"]
    patch, feedback_id = await _read(request, services.feedback_rules, trace_id, span_id)
    return json_response(await apply_patch(services, trace_id, span_id, patch, feedback_id))


async def apply_patch(
    services: AdminServices,
    trace_id: str,
    span_id: str | None,
    patch: Patch,
    feedback_id: str | None = None,
) -> dict[str, Any]:
    """Merge a checked patch into the trace (or its span) as ``api`` feedback; the answer
    body. 404 when there is no such trace or span. Shared with the Monitor page's form."""
    trace = await services.store.get_trace(trace_id)
    if trace is None or (span_id and span_id not in {s["span_id"] for s in trace["spans"]}):
        what = f"span {span_id} of trace {trace_id}" if span_id else f"trace {trace_id}"
        raise NotFound(f"No {what}.", code="not_found")
    tags = tuple(dict.fromkeys((*patch.tags, *feedback_tags(patch.attributes))))
    feedback = Feedback(patch.attributes, tags, span_id, feedback_id)
    record = feedback_record(
        trace_id, feedback, "api", tuple(patch.delete_attributes), tuple(patch.delete_tags)
    )
    status = await services.feedback.apply(record)
    return feedback_answer(trace_id, status, services.settings.feedback)


async def _read(
    request: web.Request, rules: FeedbackRules, trace_id: str, span_id: str | None
) -> tuple[Patch, str | None]:
    if not ID_PATTERN.fullmatch(trace_id):
        raise BadRequest(f"trace_id: {ID_RULE}")
    if span_id is not None:
        validate_id(span_id, "span_id")
    body = await json_body(request, MAX_BODY_BYTES)
    patch = parse_patch(body, rules)
    feedback_id = body.get("feedback_id")
    return patch, None if feedback_id is None else validate_id(feedback_id, "feedback_id")
