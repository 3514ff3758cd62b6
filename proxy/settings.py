"""Settings: frozen dataclasses loaded once from TOML, environment overrides and CLI flags.

Every value is checked against the field's declared type and range here, so a bad value stops
start-up with one line naming the key (``proxy.port: must be an integer between 1 and 65535``),
instead of failing later inside a request. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

ENV_PREFIX = "FEEDBACK_PROXY_"
CONFIG_ENV = "FEEDBACK_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/feedback-proxy.toml")
RESERVED_ROUTES = frozenset({"v1", "feedback", "healthz", "readyz", "metrics", "api"})
_UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SECRET_KEYS = frozenset({"proxy.keys", "admin.token", "feedback.token_secret"})


class ConfigError(Exception):
    """A bad setting; ``str()`` is the one line shown to the user."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


@dataclass(frozen=True, slots=True)
class ProxySettings:
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    default_upstream: str = "openai"
    keys: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 16384
    max_connections: int = 1000
    drain_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class AdminSettings:
    host: str = "127.0.0.1"
    port: int = 8081
    token: str = ""


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    base_url: str = ""
    connect_timeout: float = 10.0
    read_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = ""
    data_dir: str = ".feedback-proxy"
    key_prefix: str = "fp"
    retention_days: int = 30


@dataclass(frozen=True, slots=True)
class WriterSettings:
    spool_dir: str = ".feedback-proxy/spool"
    queue_size: int = 10000
    batch_size: int = 256
    write_timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    record: bool = True
    bodies: bool = True
    max_bytes: int = 262144


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    on_invalid: str = "reject"
    categories: tuple[str, ...] = ("incorrect", "incomplete", "off-topic", "unsafe", "other")
    reasons: tuple[str, ...] = (
        "wrong_policy",
        "hallucination",
        "missing_context",
        "formatting",
        "too_verbose",
        "other",
    )
    token_secret: str = ""
    token_ttl_seconds: int = 86400
    max_events_per_trace: int = 1000
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class ReviewRule:
    """Traces whose feedback matches ``when`` join ``dataset`` as rows to annotate."""

    dataset: str
    when: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"


def _default_upstreams() -> dict[str, UpstreamSettings]:
    return {
        "openai": UpstreamSettings(base_url="https://api.openai.com"),
        "anthropic": UpstreamSettings(base_url="https://api.anthropic.com"),
    }


def _default_review_rules() -> tuple[ReviewRule, ...]:
    return (
        ReviewRule(dataset="review", when={"user_feedback": "negative"}),
        ReviewRule(dataset="low-ratings", when={"user_feedback_rating": {"lte": 2}}),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    proxy: ProxySettings = field(default_factory=ProxySettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    upstreams: Mapping[str, UpstreamSettings] = field(default_factory=_default_upstreams)
    redis: RedisSettings = field(default_factory=RedisSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    log: LogSettings = field(default_factory=LogSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    review_rules: tuple[ReviewRule, ...] = field(default_factory=_default_review_rules)


_SECTIONS: dict[str, type[Any]] = {
    "proxy": ProxySettings,
    "admin": AdminSettings,
    "redis": RedisSettings,
    "capture": CaptureSettings,
    "feedback": FeedbackSettings,
    "log": LogSettings,
    "writer": WriterSettings,
}


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings: defaults < TOML file < environment < CLI overrides.

    ``overrides`` maps dotted keys (``proxy.port``, ``upstreams.openai.base_url``) to values.
    """
    env = os.environ if env is None else env
    raw = _read_toml(_config_path(path, env))
    _merge_env(raw, env)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    settings = _build(raw)
    validate(settings)
    return settings


def _config_path(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {_one_line(exc)}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _merge_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply ``FEEDBACK_PROXY_<SECTION>__<KEY>`` (and ``..._UPSTREAMS__<NAME>__<KEY>``)."""
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        _set_dotted(raw, ".".join(parts), _EnvText(value))


class _EnvText(str):
    """A value that came from the environment: converted by the field's type, not TOML."""


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = raw
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(key, f"{section} must be a table")
        node = child
    node[leaf] = value


def _build(raw: dict[str, Any]) -> Settings:
    known = set(_SECTIONS) | {"upstreams", "review"}
    for section in raw:
        if section not in known:
            raise ConfigError(section, f"unknown section (known: {', '.join(sorted(known))})")
    built = {name: _build_section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    upstreams = _build_upstreams(raw.get("upstreams"))
    rules = _build_review_rules(raw.get("review", {}))
    return Settings(upstreams=upstreams, review_rules=rules, **built)


def _build_review_rules(raw: Any) -> tuple[ReviewRule, ...]:
    if isinstance(raw, dict) and "rules" not in raw:
        return _default_review_rules()
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if not isinstance(rules, list):
        raise ConfigError("review.rules", "must be an array of [[review.rules]] tables")
    built = []
    for i, rule in enumerate(rules):
        key = f"review.rules[{i}]"
        if not isinstance(rule, dict) or set(rule) != {"dataset", "when"}:
            raise ConfigError(key, "must have exactly the keys dataset and when")
        if not isinstance(rule["when"], dict) or not rule["when"]:
            raise ConfigError(f"{key}.when", "must be a non-empty table")
        built.append(
            ReviewRule(dataset=_to_str(f"{key}.dataset", rule["dataset"]), when=rule["when"])
        )
    return tuple(built)


def _build_upstreams(raw: Any) -> dict[str, UpstreamSettings]:
    """The built-in upstreams (openai, anthropic), changed and extended by configuration."""
    result = _default_upstreams()
    if raw is None:
        return result
    if not isinstance(raw, dict):
        raise ConfigError("upstreams", "must be a table of [upstreams.<name>] tables")
    for name, table in raw.items():
        base = result.get(name, UpstreamSettings())
        result[name] = _build_section(f"upstreams.{name}", UpstreamSettings, table, base)
    return result


def _build_section(prefix: str, cls: type[Any], table: Any, base: Any = None) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(prefix, "must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{prefix}.{key}", f"unknown key (known: {', '.join(sorted(names))})")
        values[key] = _convert(f"{prefix}.{key}", hints[key], value)
    return replace(base if base is not None else cls(), **values)


def _convert(key: str, hint: Any, value: Any) -> Any:
    converter = _CONVERTERS.get(hint)
    if converter is None:
        raise ConfigError(key, f"unsupported type {hint}")
    return converter(key, value)


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, _EnvText) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, _EnvText) and value.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise ConfigError(key, f"must be true or false, got {value!r}")


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, _EnvText) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(key, f"must be an integer, got {value!r}")


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, _EnvText):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(key, f"must be a number, got {value!r}")


def _to_str(key: str, value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    raise ConfigError(key, f"must be a string, got {value!r}")


def _to_str_tuple(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, _EnvText):
        text = value.strip()
        if text.startswith("["):
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(key, 'must be a list of strings like ["a", "b"]') from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(key, f"must be a list of strings, got {value!r}")


_CONVERTERS: dict[Any, Any] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    tuple[str, ...]: _to_str_tuple,
}


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
    _check_range("writer.queue_size", settings.writer.queue_size, 1, 10**7)
    _check_range("writer.batch_size", settings.writer.batch_size, 1, 100_000)
    _check_range("writer.write_timeout", settings.writer.write_timeout, 0.01, 600)
    _check_range("capture.max_bytes", settings.capture.max_bytes, 0, 2**31)
    _check_range("feedback.token_ttl_seconds", settings.feedback.token_ttl_seconds, 1, 2**31)
    _check_range("feedback.max_events_per_trace", settings.feedback.max_events_per_trace, 1, 10**6)
    _check_choice("feedback.on_invalid", settings.feedback.on_invalid, ("reject", "warn"))
    _check_choice("log.level", settings.log.level, ("debug", "info", "warning", "error"))
    _check_choice("log.format", settings.log.format, ("auto", "json", "console"))
    _check_redis(settings.redis)
    _check_upstreams(settings)
    if not _is_loopback(a.host) and not a.token:
        raise ConfigError("admin.token", f"required when admin.host is not loopback ({a.host})")


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
        raise ConfigError(key, f"is not a valid URL ({_one_line(exc)})") from None
    return parts


def _check_redis(redis: RedisSettings) -> None:
    if redis.url and _split_url("redis.url", redis.url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("redis.url", "must start with redis://, rediss:// or unix://")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,32}", redis.key_prefix):
        raise ConfigError("redis.key_prefix", "must be 1-32 characters of A-Z a-z 0-9 _ . : -")


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
    for name in _SECTIONS:
        section = getattr(settings, name)
        result[name] = {
            f.name: _mask(f"{name}.{f.name}", getattr(section, f.name)) for f in fields(section)
        }
    result["upstreams"] = {
        name: {f.name: getattr(u, f.name) for f in fields(u)}
        for name, u in settings.upstreams.items()
    }
    result["review"] = {
        "rules": [{"dataset": r.dataset, "when": r.when} for r in settings.review_rules]
    }
    if settings.redis.url:
        result["redis"]["url"] = _mask_url_password(settings.redis.url)
    return result


def _mask(key: str, value: Any) -> Any:
    if key not in SECRET_KEYS or not value:
        return list(value) if isinstance(value, tuple) else value
    return ["***"] * len(value) if isinstance(value, tuple) else "***"


def _mask_url_password(url: str) -> str:
    """Hide a password in the userinfo and in a ``password=`` query parameter."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)]
    return parts._replace(netloc=netloc, query=urlencode(query, safe="*")).geturl()
