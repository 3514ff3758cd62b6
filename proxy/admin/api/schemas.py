"""The admin API's JSON shapes as types, and the OpenAPI component schemas generated from them.

Records come from ``proxy.core.records`` unchanged (the single source of their fields); the
answers and request bodies that have no record type are declared here. pydantic turns both into
JSON Schema. This module imports pydantic, so only the first ``GET /openapi.json`` loads it:
start-up and the request path never do. The handlers keep their own validation (their messages
name fields in our format); these types describe what they accept and answer.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

import typing_extensions
from pydantic import ConfigDict, Field, TypeAdapter, with_config
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import CoreSchema

from proxy.admin import params
from proxy.admin.api import datasets, patch
from proxy.core.ids import ID_PATTERN
from proxy.core.records import (
    DatasetRow,
    FeedbackEvent,
    ImplicitSignal,
    Output,
    Score,
    Span,
    Trace,
    TraceSummary,
    Usage,
)
from proxy.core.tags import MAX_TAG_CHARS, MAX_TAGS
from proxy.datasets.columns import COLUMN_NAME, MAX_COLUMNS
from proxy.feedback import scores
from proxy.store.stats import BUCKET_MS, GROUP_DIMENSIONS

REF_TEMPLATE = "#/components/schemas/{model}"
ANNOTATION_STATUSES = sorted(params.ANNOTATION_STATUSES)


def _enum(values: typing.Iterable[str | None]) -> Any:
    """A closed set taken from the handlers' own constants (a Literal would copy them)."""
    return Field(json_schema_extra={"enum": list(values)})


_DATE_TIME = Field(json_schema_extra={"format": "date-time"})
Timestamp = Annotated[str, _DATE_TIME]
Id = Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$")]
Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]
AnnotationStatus = typing_extensions.TypeAliasType(
    "AnnotationStatus", Annotated[str, _enum(ANNOTATION_STATUSES)]
)
ColumnMapping = typing_extensions.TypeAliasType(
    "ColumnMapping",
    Annotated[
        dict[str, str],
        Field(
            min_length=1,
            max_length=MAX_COLUMNS,
            description="Column name -> source: attributes.<key>, trace.<field> or "
            "span.<field>[.<field>] (the last span). Default: the four feedback attributes.",
            json_schema_extra={"propertyNames": {"pattern": f"^{COLUMN_NAME.pattern}$"}},
        ),
    ],
)
Moment = typing_extensions.TypeAliasType(
    "Moment",
    Annotated[
        str,
        Field(
            description="ISO 8601 with a time zone (2026-11-01T12:00:00Z), a bare date "
            "(UTC), or epoch milliseconds. Inclusive."
        ),
    ],
)
_CLOSED = ConfigDict(extra="forbid")  # additionalProperties: false, as the handlers refuse


def _text(max_chars: int, description: str) -> Any:
    return Field(min_length=1, max_length=max_chars, description=description)


# -- Answers


class ErrorBody(TypedDict):
    """More fields (such as ``param``) may follow."""

    message: str
    type: str
    code: str


class Error(TypedDict):
    """Every error answer of the admin API."""

    error: ErrorBody


class Status(TypedDict):
    status: str


class TraceList(TypedDict):
    traces: list[TraceSummary]
    next_cursor: str | None


class PatchResult(TypedDict):
    trace_id: str
    applied: bool
    status: Literal["applied", "queued"]


class DatasetInfo(TypedDict):
    name: str
    rows: Annotated[int, Field(ge=0)]


class DatasetList(TypedDict):
    datasets: list[DatasetInfo]


class AddRowsResult(TypedDict):
    dataset: str
    added: Annotated[int, Field(ge=0)]
    existing: Annotated[int, Field(ge=0)]
    missing: list[str]
    truncated: Annotated[
        bool, Field(description=f"More than {datasets.MAX_TRACES} traces matched.")
    ]


class RowPage(TypedDict):
    rows: list[DatasetRow]
    next_cursor: str | None


class StatsBucket(TypedDict):
    """Ungrouped: every bucket of the range; grouped: the groups with traces, feedback or calls
    in it (and a property named as group_by naming the group: model, upstream or
    attributes.<key>)."""

    bucket_start: Timestamp
    model: NotRequired[str]
    upstream: NotRequired[str]
    traces: Annotated[int, Field(description="Traces created in the bucket.")]
    positive: Annotated[int, Field(description="Of those, voted positive now.")]
    negative: Annotated[int, Field(description="Of those, voted negative now.")]
    rating_count: int
    rating_average: float | None
    regenerated: Annotated[int, Field(description="Spans asked again with the same input.")]
    stopped: Annotated[int, Field(description="Streams the client closed before their end.")]
    calls: Annotated[int, Field(description="Proxied calls (spans) started in the bucket.")]
    cost_usd: Annotated[float, Field(description="Their summed cost where it is known, USD.")]


class FeedbackStats(TypedDict):
    bucket: Annotated[str, _enum(BUCKET_MS)]
    group_by: Annotated[
        str | None,
        Field(
            pattern="^(" + "|".join(GROUP_DIMENSIONS) + r"|attributes\..+)$",
            description="model, upstream, attributes.<key> (a [stats] dimension) or null.",
        ),
    ]
    since: Timestamp
    until: Timestamp
    buckets: list[StatsBucket]


class RowDeleted(TypedDict):
    dataset: str
    row_id: str
    deleted: Literal[True]


class DatasetDeleted(TypedDict):
    dataset: str
    deleted: Literal[True]


# -- Request bodies


@with_config(_CLOSED)
class PatchFlat(TypedDict, total=False):
    """Attributes to merge and tags to add (same rules as headers)."""

    attributes: dict[str, Any]
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)]
    feedback_id: Id


_OPEN = ConfigDict(extra="ignore")  # nested in a closed body, yet the handler takes more keys


@with_config(_OPEN)
class AttributeOperation(TypedDict):
    operation: Literal["create", "delete"]
    key: Annotated[str, Field(min_length=1)]
    value: NotRequired[Annotated[Any, Field(description="Required for create.")]]


@with_config(_OPEN)
class TagOperation(TypedDict):
    operation: Literal["create", "delete"]
    tag: Tag


@with_config(_CLOSED)
class PatchOperations(TypedDict, total=False):
    """Adaline operation form: create or delete attributes and tags."""

    attributes: Annotated[list[AttributeOperation], Field(max_length=patch.MAX_ATTRIBUTES)]
    tags: Annotated[list[TagOperation], Field(max_length=MAX_TAGS)]
    feedback_id: Id


_Rating = Annotated[float, Field(ge=1, le=5)]
ScoreName = Annotated[str, Field(pattern=f"^{scores.NAME_PATTERN.pattern}$")]


@with_config(_CLOSED)
class TraceFilter(TypedDict, total=False):
    """The filters of GET /api/traces as JSON values (no limit/cursor). The query parameters
    of GET /api/traces are generated from these fields too, in this order."""

    feedback: Annotated[
        str, _enum(sorted(params.VERDICTS)), Field(description="user_feedback verdict.")
    ]
    rating_min: Annotated[_Rating, Field(description="Lowest user_feedback_rating (inclusive).")]
    rating_max: Annotated[_Rating, Field(description="Highest user_feedback_rating (inclusive).")]
    category: Annotated[str, _text(128, "user_feedback_category (case-insensitive).")]
    reason: Annotated[str, _text(128, "feedback_reason (case-insensitive).")]
    tag: Annotated[
        list[Tag],
        Field(
            max_length=params.MAX_TAG_FILTERS, description="Tag; repeatable, every one must match."
        ),
    ]
    annotation_status: Annotated[
        str, _enum(ANNOTATION_STATUSES), Field(description="Annotation status of the trace.")
    ]
    has_feedback: Annotated[bool, Field(description="Only traces with (or without) feedback.")]
    model: Annotated[str, _text(256, "A model used by one of the trace's spans.")]
    upstream: Annotated[str, _text(128, "A configured upstream name used by the trace.")]
    session_id: Annotated[str, _text(128, "Session ID.")]
    user_id: Annotated[str, _text(128, "User ID.")]
    since: Annotated[Moment, Field(description="Created at or after.")]
    until: Annotated[Moment, Field(description="Created at or before.")]
    cost_min: Annotated[float, Field(ge=0, description="Lowest trace cost_usd (inclusive).")]
    cost_max: Annotated[float, Field(ge=0, description="Highest trace cost_usd (inclusive).")]
    score: Annotated[ScoreName, Field(description="Has an evaluator score of this name.")]
    score_label: Annotated[
        str, Field(description="<name>:<label>: has a score of that name with that label.")
    ]
    implicit: Annotated[
        str,
        _enum(sorted(params.IMPLICIT_SIGNALS)),
        Field(description="A span of the trace has this implicit signal."),
    ]


@with_config(_CLOSED)
class ScoreBody(TypedDict):
    """An evaluator score; at least one of value and label. The same score_id replaces."""

    name: ScoreName
    value: NotRequired[Annotated[float | None, Field(description="A finite number.")]]
    label: NotRequired[
        Annotated[str | None, Field(description="A token: " + scores.LABEL_RULE + ".")]
    ]
    explanation: NotRequired[Annotated[str | None, Field(max_length=scores.MAX_EXPLANATION_CHARS)]]
    span_id: NotRequired[Id | None]
    score_id: NotRequired[Id | None]


# "pass" is a Python keyword: the functional form can name the field.
AgreementRow = TypedDict("AgreementRow", {"pass": int, "fail": int})
_Ratio = Annotated[float | None, Field(ge=0, le=1)]
_Interval = Annotated[list[float] | None, Field(min_length=2, max_length=2)]


class AgreementMatrix(TypedDict):
    positive: AgreementRow
    negative: AgreementRow


class RatingCorrelation(TypedDict):
    n: Annotated[int, Field(ge=0)]
    pearson: Annotated[float | None, Field(ge=-1, le=1)]
    spearman: Annotated[float | None, Field(ge=-1, le=1)]


class Agreement(TypedDict):
    """The evaluator score against the user's vote over the traces that have both; every
    figure is null when it cannot be computed (n = 0, no variance), never 0."""

    score: ScoreName
    n: Annotated[int, Field(ge=0, description="Traces with both a vote and the score.")]
    matrix: AgreementMatrix
    agreement: _Ratio
    agreement_ci: Annotated[_Interval, Field(description="95 % Wilson interval.")]
    cohen_kappa: Annotated[float | None, Field(ge=-1, le=1)]
    cohen_kappa_ci: Annotated[_Interval, Field(description="95 %, large-sample error.")]
    negative_precision: Annotated[_Ratio, Field(description="Of the fails, voted negative.")]
    negative_recall: Annotated[_Ratio, Field(description="Of the negatives, failed.")]
    ratings: RatingCorrelation
    warnings: list[str]


@with_config(_CLOSED)
class AddRowsByIds(TypedDict):
    trace_ids: Annotated[list[Id], Field(min_length=1, max_length=datasets.MAX_TRACES)]
    columns: NotRequired[ColumnMapping]


@with_config(_CLOSED)
class AddRowsByFilter(TypedDict):
    filter: TraceFilter
    columns: NotRequired[ColumnMapping]


@with_config(ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}))
class RowPatch(TypedDict, total=False):
    annotation: dict[str, Any] | None
    annotation_status: AnnotationStatus


# Every named component of the document. Nested types (ErrorBody, DatasetInfo, Output, ...)
# join on their own as pydantic references them.
COMPONENTS: tuple[Any, ...] = (
    Error, Status, AnnotationStatus, Moment, Usage, Output, Span, FeedbackEvent, TraceSummary,
    Trace, TraceList, PatchFlat, PatchOperations, PatchResult, DatasetList, AddRowsByIds,
    ColumnMapping, AddRowsByFilter, TraceFilter, AddRowsResult, DatasetRow, RowPage, RowPatch,
    FeedbackStats, StatsBucket, RowDeleted, DatasetDeleted,
    Score, ImplicitSignal, ScoreBody, Agreement,
)  # fmt: skip

# What the record types cannot say without pydantic in proxy.core: formats, enums, bounds and
# descriptions of their fields, merged into the generated property schemas. A key that names
# no field of the record fails the build (and so the tests).
_TRACE_DETAILS: dict[str, dict[str, Any]] = {
    "created_at": {"format": "date-time"},
    "updated_at": {"format": "date-time"},
    "annotation_status": {"enum": [*ANNOTATION_STATUSES, None]},
    "span_count": {"minimum": 0},
    "cost_usd": {"description": "USD, summed over the spans with a known cost; else null."},
    "total_tokens": {"description": "Summed over the spans with known total tokens; else null."},
}
RECORD_DETAILS: dict[str, dict[str, dict[str, Any]]] = {
    "Span": {
        "upstream": {"description": "Configured upstream name."},
        "path": {"description": "Path sent upstream."},
        "started_at": {"format": "date-time"},
        "input": {"description": "Captured request input (may be off or capped)."},
        "output": {"description": "Captured output: text and tool_calls."},
        "error": {"description": "Upstream or transport error, else null."},
        "cost_usd": {"description": "USD from genai-prices; null when model or usage is unknown."},
    },
    "Score": {"created_at": {"format": "date-time"}, "source": {"enum": ["api"]}},
    "ImplicitSignal": {"at": {"format": "date-time"}},
    "FeedbackEvent": {
        "received_at": {"format": "date-time"},
        "source": {"enum": ["header", "route", "api"]},
    },
    "Trace": _TRACE_DETAILS,
    "TraceSummary": _TRACE_DETAILS,
    "DatasetRow": {
        "input": {"description": "The trace's last span input."},
        "output": {"description": "The trace's last span output."},
        "feedback": {
            "description": "The mapped columns (see ColumnMapping); by default these four.",
            "properties": {
                "user_feedback": {"type": ["string", "null"]},
                "user_feedback_category": {"type": ["string", "null"]},
                "feedback_reason": {"type": ["string", "null"]},
                "user_feedback_rating": {"type": ["number", "null"]},
            },
        },
        "annotation_status": {"$ref": REF_TEMPLATE.format(model="AnnotationStatus")},
        "added_at": {"format": "date-time"},
    },
}


class _Generator(GenerateJsonSchema):
    """pydantic's generator without the per-field titles (the property name says it)."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


@cache
def component_schemas() -> dict[str, Any]:
    """``components.schemas`` of the document, by name (cached: treat it as read-only)."""
    mode: JsonSchemaMode = "validation"  # TypedDicts read the same both ways
    inputs = [(i, mode, TypeAdapter(_for_pydantic(t))) for i, t in enumerate(COMPONENTS)]
    _, definitions = TypeAdapter.json_schemas(
        inputs, ref_template=REF_TEMPLATE, schema_generator=_Generator
    )
    schemas: dict[str, Any] = definitions["$defs"]
    for schema in schemas.values():
        schema.pop("title", None)
        if "description" in schema:  # docstrings are reST; OpenAPI descriptions are Markdown
            schema["description"] = " ".join(schema["description"].replace("``", "`").split())
    for name, fields in RECORD_DETAILS.items():
        properties = schemas[name]["properties"]
        for field, detail in fields.items():
            if field not in properties:
                raise KeyError(f"RECORD_DETAILS: {name} has no field {field}")
            if "$ref" in detail:  # a reference replaces the generated type
                properties[field] = detail
            else:
                properties[field].update(detail)
    return dict(sorted(schemas.items()))


# -- pydantic reads TypedDicts of ``typing`` only from Python 3.12 on; proxy.core uses them (it
# must not depend on pydantic or typing_extensions). So each TypedDict is rebuilt as a
# ``typing_extensions.TypedDict`` with the same fields, nested types included. Delete this when
# the project requires Python 3.12.


def _for_pydantic(hint: Any) -> Any:
    if typing.is_typeddict(hint):
        return _rebuilt(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None or origin is Literal or not args:
        return hint
    if origin is Annotated:
        return Annotated[(_for_pydantic(args[0]), *hint.__metadata__)]
    converted = tuple(_for_pydantic(arg) for arg in args)
    if origin is types.UnionType:
        return typing.Union[converted]  # noqa: UP007 (built from a tuple)
    return origin[converted[0] if len(converted) == 1 else converted]


_typed_dict: Any = typing_extensions.TypedDict  # called with a name that is not a literal


@cache
def _rebuilt(cls: Any) -> Any:
    fields = {}
    for key, hint in typing.get_type_hints(cls, include_extras=True).items():
        # On 3.11 a string annotation (``from __future__ import annotations``) hides
        # NotRequired from __required_keys__, so the hint decides; else ``total`` does.
        required = key in cls.__required_keys__
        if typing.get_origin(hint) in (Required, NotRequired):
            required, hint = typing.get_origin(hint) is Required, typing.get_args(hint)[0]
        hint = _for_pydantic(hint)
        fields[key] = Required[hint] if required else NotRequired[hint]
    rebuilt = _typed_dict(cls.__name__, fields)
    rebuilt.__doc__, rebuilt.__module__ = cls.__doc__, cls.__module__
    if hasattr(cls, "__pydantic_config__"):
        rebuilt.__pydantic_config__ = cls.__pydantic_config__
    return rebuilt
