"""``POST /feedback`` on the proxy listener: feedback without a model call.

Headers (as on any proxied call, ``X-Trace-Id`` required) or a JSON body
``{"trace_id", "span_id"?, "feedback_id"?, "attributes": {...}, "tags": [...]}``. Allowed with
the proxy key, or with the ``X-Feedback-Token`` of a response (as ``Authorization: Bearer`` or
``X-Feedback-Token``), which admits feedback for exactly its trace and span, even where proxy
keys are required: a browser can send the click without holding any secret.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from proxy.core.errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    ProxyError,
    Unauthorized,
)
from proxy.core.tags import MAX_TAGS, TAG_RULE, THUMBS_TAGS, is_tag, unique_tags
from proxy.feedback.events import feedback_answer, feedback_record, request_feedback
from proxy.feedback.parse import (
    FEEDBACK_KEYS,
    Feedback,
    FeedbackRules,
    feedback_tags,
    validate_attributes,
    validate_id,
)
from proxy.feedback.token import VERSION as TOKEN_VERSION
from proxy.feedback.token import verify
from proxy.gateway.auth import PROXY_KEY_HEADER, proxy_key_ok
from proxy.gateway.call import access_log
from proxy.gateway.responses import error_response
from proxy.gateway.services import GATEWAY, GatewayServices
from proxy.tracing.context import parse_trace_context

MAX_BODY_BYTES = 64 * 1024
_ALLOWED_REQUEST_HEADERS = (
    "Content-Type, Authorization, X-Feedback-Token, X-Trace-Id, X-Feedback, X-Feedback-Rating, "
    "X-Feedback-Comment, X-Feedback-Category, X-Feedback-Reason, X-Feedback-Timestamp, "
    "X-Feedback-Span-Id, X-Feedback-Id"
)


async def post_feedback(request: web.Request) -> web.Response:
    """Feedback without a model call: validated, authorised, merged (or queued); answered with
    the trace's ID and logged on the access log like a call."""
    services = request.app[GATEWAY]
    started = time.perf_counter()
    headers = cors_headers(request, services)
    if headers:
        headers["Access-Control-Expose-Headers"] = "X-Trace-Id"
    outcome = None
    try:
        trace_id, feedback = await _read(request, services, headers)
        if _authorize(request, services, trace_id, feedback.span_id):
            _only_feedback(feedback)
        outcome = await services.feedback.apply(feedback_record(trace_id, feedback, "route"))
        body = orjson.dumps(feedback_answer(trace_id, outcome, services.settings.feedback))
        response = web.Response(body=body, content_type="application/json", headers=headers)
    except ProxyError as error:
        response = error_response(error, headers)
        outcome = error.code
    _log_feedback(headers.get("X-Trace-Id"), response.status, outcome, started)
    return response


def _log_feedback(trace_id: str | None, status: int, outcome: str | None, started: float) -> None:
    if access_log.is_enabled_for(logging.INFO):
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        access_log.info("feedback", trace_id=trace_id, path="/feedback", status=status,
                        feedback=outcome, duration_ms=duration_ms)  # fmt: skip


async def feedback_method_not_allowed(request: web.Request) -> web.Response:
    """``/feedback`` takes POST (and the CORS preflight); it is never forwarded upstream."""
    error = MethodNotAllowed(f"{request.method} /feedback: use POST.", code="method_not_allowed")
    return error_response(error, {"Allow": "POST, OPTIONS"})


async def preflight_feedback(request: web.Request) -> web.Response:
    """CORS preflight: a page on another origin may POST feedback with its token."""
    headers = cors_headers(request, request.app[GATEWAY])
    if headers:
        headers.update({
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_REQUEST_HEADERS,
            "Access-Control-Max-Age": "600",
        })  # fmt: skip
    return web.Response(status=204, headers=headers)


def cors_headers(request: web.Request, services: GatewayServices) -> dict[str, str]:
    """Allow-Origin for an allowed Origin (``*`` allows any: tokens are not cookies)."""
    origin = request.headers.get("Origin")
    allowed = services.settings.feedback.allowed_origins
    if origin is None or not (origin in allowed or "*" in allowed):
        return {}
    return {"Access-Control-Allow-Origin": origin if "*" not in allowed else "*", "Vary": "Origin"}


def _only_feedback(feedback: Feedback) -> None:
    """A browser token admits feedback, not arbitrary attributes or tags."""
    for key in feedback.attributes:
        if key not in FEEDBACK_KEYS:
            raise BadRequest(f"attributes.{key}: a feedback token admits only feedback keys",
                             code="invalid_feedback")  # fmt: skip
    for tag in feedback.tags:
        if tag not in THUMBS_TAGS:
            raise BadRequest("tags: a feedback token admits no tags of its own",
                             code="invalid_feedback")  # fmt: skip


async def _read(
    request: web.Request, services: GatewayServices, answer: dict[str, str]
) -> tuple[str, Feedback]:
    """(trace ID, feedback) of either form; the trace ID goes into ``answer``'s headers as
    soon as it is known, so a refusal names the trace too."""
    if request.content_type == "application/json" or request.body_exists:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Feedback body over {MAX_BODY_BYTES} bytes.")
        body = _body_object(await request.read())
        trace_id = answer["X-Trace-Id"] = validate_id(body.get("trace_id"), "trace_id")
        return trace_id, _body_feedback(body, services.feedback_rules)
    context = parse_trace_context(request.headers)
    if context.generated:
        raise BadRequest("X-Trace-Id: required on POST /feedback", code="missing_trace_id")
    answer["X-Trace-Id"] = context.trace_id
    _, feedback = request_feedback(request.headers, context, services.feedback_rules)
    if feedback is None:
        raise BadRequest("POST /feedback carries no feedback header", code="no_feedback")
    return context.trace_id, feedback


def _body_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body: must be a JSON object", code="invalid_body") from None
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object", code="invalid_body")
    return body


def _body_feedback(body: dict[str, Any], rules: FeedbackRules) -> Feedback:
    """The JSON body form's feedback, validated by the same rules as the headers."""
    span_id = _optional_id(body, "span_id")
    feedback_id = _optional_id(body, "feedback_id")
    attributes = body.get("attributes", {})
    if not isinstance(attributes, dict):
        raise BadRequest("attributes: must be a JSON object", code="invalid_body")
    attributes = validate_attributes(
        attributes, rules, datetime.now(UTC), "attributes", default_timestamp=True
    )
    tags = _tags(body.get("tags", []))
    if not attributes and not tags:
        raise BadRequest("body: needs attributes or tags", code="no_feedback")
    all_tags = tuple(dict.fromkeys((*tags, *feedback_tags(attributes))))
    return Feedback(attributes, all_tags, span_id, feedback_id)


def _optional_id(body: dict[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else validate_id(body[key], key)


def _tags(value: Any) -> tuple[str, ...]:
    """The body's tags, held to the one tag rule (``proxy.core.tags``)."""
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise BadRequest(f"tags: must be a list of at most {MAX_TAGS} strings", code="invalid_body")
    for i, tag in enumerate(value):
        if not is_tag(tag):
            raise BadRequest(f"tags[{i}]: {TAG_RULE}", code="invalid_body")
    return unique_tags(value)


def _authorize(
    request: web.Request, services: GatewayServices, trace_id: str, span_id: str | None
) -> bool:
    """True when a feedback token (bound to trace and span) admitted the request; otherwise
    the proxy key rules apply."""
    token = _token(request)
    if token is not None:
        token_trace, token_span = verify(services.token_secret, token, int(time.time()))
        if token_trace != trace_id or (span_id is not None and span_id != token_span):
            raise Unauthorized("This feedback token is for another trace or span.",
                               code="invalid_feedback_token")  # fmt: skip
        return True
    if not proxy_key_ok(request.headers, services.settings.proxy.keys):
        raise Unauthorized(
            f"Send {PROXY_KEY_HEADER} or the response's X-Feedback-Token.",
            code="invalid_proxy_key",
        )
    return False


def _token(request: web.Request) -> str | None:
    """X-Feedback-Token, or a bearer credential that is one of our tokens (not a provider key)."""
    token = request.headers.get("X-Feedback-Token")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return bearer if bearer.startswith(f"{TOKEN_VERSION}.") else None
