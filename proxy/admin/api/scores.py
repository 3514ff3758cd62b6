"""``POST /api/traces/{id}/scores`` and ``GET /api/stats/agreement`` (docs/reference.md §12).

A score is validated whole (400 naming the field, nothing stored), then applied through the
feedback service like a PATCH: ``applied``, or ``queued`` while Redis is away. The same
``score_id`` again replaces that score. Agreement figures come from the pairs the store keeps
per hour and score name, joined with the feedback stats of the same traces.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from proxy.admin.api.body import json_body
from proxy.admin.params import InvalidParameter, moment, query_params, until_moment
from proxy.admin.responses import json_response
from proxy.admin.services import ADMIN
from proxy.core.errors import BadRequest, NotFound, PayloadTooLarge
from proxy.core.ids import ID_PATTERN, ID_RULE
from proxy.feedback.scores import NAME_PATTERN, NAME_RULE, parse_score, score_record
from proxy.store.scores import MAX_SCORES_PER_TRACE, AgreementQuery
from proxy.store.stats import HOUR_MS

MAX_BODY_BYTES = 16 * 1024
MAX_RANGE_HOURS = 24 * 400
_DEFAULT_RANGE_MS = 30 * 24 * HOUR_MS
_AGREEMENT_PARAMS = frozenset({"score", "since", "until", "threshold"})


async def post_score(request: web.Request) -> web.Response:
    """Store one evaluator score on the trace: ``{"trace_id", "applied", "status"}``."""
    services = request.app[ADMIN]
    trace_id = request.match_info["trace_id"]
    if not ID_PATTERN.fullmatch(trace_id):
        raise BadRequest(f"trace_id: {ID_RULE}", code="invalid_trace_id")
    fields = parse_score(await json_body(request, MAX_BODY_BYTES))
    status = await services.feedback.apply_score(score_record(trace_id, fields))
    if status == "no_trace":
        raise NotFound(f"No trace {trace_id}.", code="trace_not_found")
    if status == "full":
        raise PayloadTooLarge(
            f"Trace {trace_id} holds {MAX_SCORES_PER_TRACE} scores already; nothing was stored.",
            code="scores_full",
        )
    return json_response({"trace_id": trace_id, "applied": status == "applied", "status": status})


async def agreement(request: web.Request) -> web.Response:
    """How the evaluator ``score`` agrees with the users' votes and ratings."""
    query = parse_agreement_query(query_params(request.query), now_ms=int(time.time() * 1000))
    answer = await request.app[ADMIN].agreement.query(query)
    return json_response(answer)


def parse_agreement_query(params: Mapping[str, Sequence[str]], now_ms: int) -> AgreementQuery:
    """The query from its parameters; raises InvalidParameter. ``until`` defaults to now,
    ``since`` to 30 days before it, ``threshold`` to 0.5."""
    for name, values in params.items():
        if name not in _AGREEMENT_PARAMS:
            raise InvalidParameter(name, "unknown parameter")
        if len(values) != 1:
            raise InvalidParameter(name, "must appear once")
    single = {name: values[0].strip() for name, values in params.items()}
    score = single.get("score")
    if score is None or NAME_PATTERN.fullmatch(score) is None:
        raise InvalidParameter("score", "required; " + NAME_RULE)
    until = int(until_moment(single["until"])) if "until" in single else now_ms
    since = int(moment("since")(single["since"])) if "since" in single else None
    since = until - _DEFAULT_RANGE_MS + 1 if since is None else since
    if since > until:
        raise InvalidParameter("until", "must not be before since")
    if (until - since) // HOUR_MS >= MAX_RANGE_HOURS:
        raise InvalidParameter("since", f"the range may span at most {MAX_RANGE_HOURS} hours")
    return AgreementQuery(score, since, until, _threshold(single.get("threshold")))


def _threshold(text: str | None) -> float:
    if text is None:
        return 0.5
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not text.isascii():
        raise InvalidParameter("threshold", "must be a finite number")
    return value
