"""What makes settings valid, and how they are shown: ranges, cross-field rules, masking.

Every rule raises ``ConfigError`` naming the dotted key, so a bad value stops start-up with
one line. Kept apart from loading (``load``), which only turns text into typed values.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    from proxy.config.model import RedactSettings, RedisSettings, Settings

RESERVED_ROUTES = frozenset({"v1", "feedback", "healthz", "readyz", "metrics", "api"})
SECRET_KEYS = frozenset(
    {"proxy.keys", "admin.token", "feedback.token_secret", "capture.redact.key"}
)
_UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigError(Exception):
    """A bad setting; ``str()`` is the one line shown to the user."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def validate(settings: Settings) -> None:
    """Check ranges and cross-field rules; raise ConfigError naming the first bad key."""
    p, a = settings.proxy, settings.admin
    _check_range("proxy.port", p.port, 0, 65535)
    _check_range("admin.port", a.port, 0, 65535)
    _check_range("proxy.workers", p.workers, 1, 256)
    _check_range("proxy.max_body_bytes", p.max_body_bytes, 1, 2**40)
    _check_range("proxy.max_header_bytes", p.max_header_bytes, 1024, 1024 * 1024)
    _check_range("proxy.max_connections", p.max_connections, 1, 1_000_000)
    _check_range("proxy.drain_seconds", p.drain_seconds, 0, 86400)
    _check_range("redis.retention_days", settings.redis.retention_days, 1, 36500)
    _check_range("redis.max_connections", settings.redis.max_connections, 1, 100_000)
    _check_range("writer.queue_size", settings.writer.queue_size, 1, 10**7)
    _check_range("writer.batch_size", settings.writer.batch_size, 1, 100_000)
    _check_range("writer.write_timeout", settings.writer.write_timeout, 0.01, 600)
    _check_range("capture.max_bytes", settings.capture.max_bytes, 0, 2**31)
    window = settings.implicit.regenerate_window_seconds
    _check_range("implicit.regenerate_window_seconds", window, 1, 30 * 86400)
    _check_range("feedback.token_ttl_seconds", settings.feedback.token_ttl_seconds, 1, 2**31)
    _check_range("feedback.max_events_per_trace", settings.feedback.max_events_per_trace, 1, 10**6)
    _check_choice("feedback.on_invalid", settings.feedback.on_invalid, ("reject", "warn"))
    _check_choice("log.level", settings.log.level, ("debug", "info", "warning", "error"))
    _check_choice("log.format", settings.log.format, ("auto", "json", "console"))
    _check_redis(settings.redis)
    _check_redact(settings.capture.redact)
    _check_upstreams(settings)
    _check_dimensions(settings.stats.dimensions)
    _check_otlp(settings)
    if not _is_loopback(a.host) and not a.token:
        raise ConfigError("admin.token", f"required when admin.host is not loopback ({a.host})")


MAX_DIMENSIONS = 20


def _check_dimensions(dimensions: tuple[str, ...]) -> None:
    """Attribute keys to count stats by: few (each is counted on every merge), distinct, and
    spelled so that they fit a counter's name."""
    if len(dimensions) > MAX_DIMENSIONS:
        raise ConfigError("stats.dimensions", f"at most {MAX_DIMENSIONS} keys")
    if len(set(dimensions)) != len(dimensions):
        raise ConfigError("stats.dimensions", "lists a key twice")
    for key in dimensions:
        if not 0 < len(key) <= 128 or not key.isprintable() or key != key.strip():
            raise ConfigError("stats.dimensions", f"{key!r} is not an attribute key (1-128 "
                              "printable characters, no surrounding spaces)")  # fmt: skip


def _check_otlp(settings: Settings) -> None:
    """``[export.otlp]``: the holder renews its lease once a quarter of it has passed, before
    a send attempt; a quarter lease plus one attempt and its backoff must fit in the lease,
    else a live exporter could lose it mid-batch."""
    otlp = settings.otlp
    _check_range("export.otlp.batch_size", otlp.batch_size, 1, 10_000)
    _check_range("export.otlp.timeout", otlp.timeout, 0.1, 600)
    _check_range("export.otlp.max_attempts", otlp.max_attempts, 1, 100)
    _check_range("export.otlp.max_backoff", otlp.max_backoff, 0.01, 3600)
    _check_range("export.otlp.lease_seconds", otlp.lease_seconds, 1, 3600)
    if otlp.endpoint and _split_url("export.otlp.endpoint", otlp.endpoint).scheme not in {
        "http",
        "https",
    }:
        raise ConfigError("export.otlp.endpoint", "must start with http:// or https://")
    if otlp.lease_seconds * 3 / 4 <= otlp.timeout + otlp.max_backoff:
        raise ConfigError(
            "export.otlp.lease_seconds",
            "must be more than 4/3 of (export.otlp.timeout + max_backoff)",
        )


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low} and {high}, got {value}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"must be one of {', '.join(choices)}, got {value!r}")


def _split_url(key: str, url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(key, f"is not a valid URL ({one_line(exc)})") from None
    return parts


def _check_redis(redis: RedisSettings) -> None:
    if redis.url and _split_url("redis.url", redis.url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("redis.url", "must start with redis://, rediss:// or unix://")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,32}", redis.key_prefix):
        raise ConfigError("redis.key_prefix", "must be 1-32 characters of A-Z a-z 0-9 _ . : -")
    if redis.cluster:
        _check_cluster_url(redis.url)


def _check_cluster_url(url: str) -> None:
    """A cluster is reached through one seed node over TCP; it has only database 0. The
    embedded Redis (empty url) is a single server, so it cannot stand in for one."""
    if not url:
        raise ConfigError(
            "redis.cluster",
            "needs redis.url set to a seed node (redis://host:port); "
            "the embedded Redis is a single server, not a cluster",
        )
    parts = _split_url("redis.url", url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ConfigError("redis.url", "must be redis://host:port or rediss:// with redis.cluster")
    if parts.path.strip("/") not in {"", "0"}:
        raise ConfigError("redis.url", "a Redis Cluster has only database 0")


def _check_redact(redact: RedactSettings) -> None:
    """Kinds and mode by name; each operator pattern compiles, has a usable name and cannot
    match the empty string (the error names the pattern)."""
    from proxy.config.model import REDACT_KINDS

    for kind in redact.kinds:
        _check_choice("capture.redact.kinds", kind, REDACT_KINDS)
    _check_choice("capture.redact.mode", redact.mode, ("mask", "hash"))
    for name, pattern in redact.patterns.items():
        compile_redact_pattern(name, pattern)


def compile_redact_pattern(name: str, pattern: str) -> re.Pattern[str]:
    """An operator's pattern compiled, or ``ConfigError`` naming it: a bad name, a bad regex,
    or one that matches the empty string (it would redact between every character)."""
    from proxy.config.model import REDACT_KINDS

    key = f"capture.redact.patterns.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name) or name in REDACT_KINDS:
        raise ConfigError(
            key,
            "name must be 1-32 characters of a-z 0-9 _, start with a letter, "
            "and not be a built-in kind",
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(key, f"is not a valid regular expression ({exc})") from None
    if compiled.search("") is not None:
        raise ConfigError(key, "matches the empty string; it must match at least one character")
    return compiled


def _check_upstreams(settings: Settings) -> None:
    if not settings.upstreams:
        raise ConfigError("upstreams", "at least one upstream is required")
    for name, upstream in settings.upstreams.items():
        key = f"upstreams.{name}"
        if not _UPSTREAM_NAME.match(name) or name in RESERVED_ROUTES:
            raise ConfigError(
                key,
                "name must be [a-z0-9_-] and not one of: v1 feedback healthz readyz metrics api",
            )
        _check_base_url(f"{key}.base_url", upstream.base_url)
        _check_range(f"{key}.connect_timeout", upstream.connect_timeout, 0.001, 3600)
        _check_range(f"{key}.read_timeout", upstream.read_timeout, 0.001, 86400)
    if settings.proxy.default_upstream not in settings.upstreams:
        names = ", ".join(sorted(settings.upstreams))
        raise ConfigError("proxy.default_upstream", f"must name an upstream ({names})")


def _check_base_url(key: str, url: str) -> None:
    parts = _split_url(key, url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(key, f"must be an http:// or https:// URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(key, "must not carry a query or a fragment")


def _is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets replaced by ``***`` (for check-config)."""
    result: dict[str, Any] = {}
    for section in fields(settings):
        if section.name in ("upstreams", "review_rules", "otlp"):
            continue
        values = getattr(settings, section.name)
        result[section.name] = {
            f.name: _mask(f"{section.name}.{f.name}", getattr(values, f.name))
            for f in fields(values)
        }
    result["upstreams"] = {
        name: {f.name: _mask(f"upstreams.{name}.{f.name}", getattr(up, f.name)) for f in fields(up)}
        for name, up in settings.upstreams.items()
    }
    result["review"] = {
        "rules": [{"dataset": r.dataset, "when": r.when} for r in settings.review_rules]
    }
    result["export"] = {"otlp": _masked_otlp(settings)}
    return result


def _masked_otlp(settings: Settings) -> dict[str, Any]:
    """Every ``[export.otlp]`` key; header values are credentials (authorization, API keys)."""
    otlp = settings.otlp
    shown = {f.name: _mask("export.otlp." + f.name, getattr(otlp, f.name)) for f in fields(otlp)}
    shown["headers"] = dict.fromkeys(otlp.headers, "***")
    return shown


def _mask(key: str, value: Any) -> Any:
    """A secret as ``***``; any URL setting (``redis.url``, upstream base URLs) with its
    password hidden, since a gateway or Redis URL may carry one in its userinfo."""
    if is_dataclass(value):  # a sub-table such as capture.redact
        return {f.name: _mask(f"{key}.{f.name}", getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, str) and "://" in value:
        return _mask_url_password(value)
    if key not in SECRET_KEYS or not value:
        return list(value) if isinstance(value, tuple) else value
    return ["***"] * len(value) if isinstance(value, tuple) else "***"


def _mask_url_password(url: str) -> str:
    """Hide a password in the userinfo and in a ``password=`` query parameter; a URL with
    neither is returned as it was (not re-encoded)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not password and not any(k.lower() == "password" for k, _ in query):
        return url
    netloc = parts.netloc
    if password:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    masked_query = [(k, "***" if k.lower() == "password" else v) for k, v in query]
    return parts._replace(netloc=netloc, query=urlencode(masked_query, safe="*")).geturl()
