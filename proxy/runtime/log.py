"""Structured logging: JSON lines (orjson) in production, readable lines on a terminal.

Log events carry IDs, routes, statuses and timings only. Nothing here ever receives a body or
a header value, so no credential can reach a log line; ``drop_secrets`` is the safety net for
a field name that would suggest one, and ``http_errors.ServerLogFilter`` keeps aiohttp's own
server logger (which quotes malformed request lines) to one value-free line per event.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from proxy.runtime.http_errors import install_server_log_filter

_SECRET_FIELDS = frozenset(
    {"authorization", "x-api-key", "api-key", "api_key", "token", "password"}
)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Mask any field whose name says it holds a secret."""
    for name in _SECRET_FIELDS.intersection(event):
        event[name] = "***"
    return event


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog once per process; ``fmt`` is auto, json or console."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_secrets,
    ]
    if as_json:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        factory: Any = structlog.BytesLoggerFactory()
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()))
        factory = structlog.PrintLoggerFactory()
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # aiohttp's own loggers (errors inside the server) go through the standard library. Its
    # server logger quotes raw request lines (credentials) in multi-line tracebacks: those
    # records become one structlog event each instead.
    logging.basicConfig(level=_LEVELS[level], format="%(levelname)s %(name)s: %(message)s")
    install_server_log_filter()
