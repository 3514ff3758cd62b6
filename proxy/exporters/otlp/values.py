"""OTLP attribute values, IDs and times: the small conversions every OTLP message here uses.

A value the proxy does not know (None, an empty list) is left out, never sent as 0 or "".
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from proxy.tracing.context import w3c_span_id_for, w3c_trace_id_for

SCOPE_NAME = "feedback-proxy"


def _value(value: Any) -> AnyValue | None:
    """An OTLP AnyValue; None for None (absent, never a made-up zero)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list | tuple):
        items = [v for v in (_value(item) for item in value) if v is not None]
        return AnyValue(array_value=ArrayValue(values=items))
    return AnyValue(string_value=orjson.dumps(value).decode())


def known(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, list | tuple) and not raw)


def set_value(target: AnyValue, raw: Any) -> None:
    """Fill ``target`` in place (cheaper than building an AnyValue and copying it in)."""
    if isinstance(raw, bool):
        target.bool_value = raw
    elif isinstance(raw, int):
        target.int_value = raw
    elif isinstance(raw, float):
        target.double_value = raw
    elif isinstance(raw, str):
        target.string_value = raw
    else:
        target.CopyFrom(_value(raw) or AnyValue())


def attributes(pairs: Iterable[tuple[str, Any]]) -> list[KeyValue]:
    """KeyValues for the pairs whose value is known (None and empty lists left out)."""
    out = []
    for key, raw in pairs:
        if raw is None or (isinstance(raw, list | tuple) and not raw):
            continue
        value = _value(raw)
        if value is not None:
            out.append(KeyValue(key=key, value=value))
    return out


def resource(service_name: str, version: str) -> Resource:
    return Resource(
        attributes=attributes(
            [
                ("service.name", service_name),
                ("service.version", version),
                ("telemetry.sdk.name", SCOPE_NAME),
                ("telemetry.sdk.language", "python"),
            ]
        )
    )


def length_delimited(field: int, body: bytes) -> bytes:
    """One length-delimited protobuf field (a message or bytes): its tag, the body's length
    as a varint, the body. Concatenating these for a repeated field of serialised messages is
    exactly what protobuf's own serialiser writes for it."""
    size = len(body)
    head = bytearray([field << 3 | 2])
    while size > 0x7F:
        head.append(size & 0x7F | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + body


def trace_id_bytes(trace_id: str) -> bytes:
    """The 16 bytes of the W3C trace-id the proxy sent upstream for this trace."""
    return bytes.fromhex(w3c_trace_id_for(trace_id))


def span_id_bytes(span_id: str | None) -> bytes:
    """8 bytes for a span ID (a custom parent ID hashed the way trace IDs are); b"" for None."""
    return b"" if not span_id else bytes.fromhex(w3c_span_id_for(span_id))


def unix_nanos(iso: str | None) -> int:
    """Epoch nanoseconds of an ISO time stamp (``...Z``); 0 (unknown) when unreadable."""
    if not iso:
        return 0
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return 0
    return int(moment.timestamp() * 1_000_000) * 1000
