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

from proxy.settings_checks import ConfigError, masked, one_line, validate
from proxy.store.keys import DATASET_NAME, DATASET_NAME_RULE

__all__ = ["ConfigError", "Settings", "load_settings", "masked", "validate"]

ENV_PREFIX = "FEEDBACK_PROXY_"
CONFIG_ENV = "FEEDBACK_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/feedback-proxy.toml")


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
    cluster: bool = False


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
        raise ConfigError("config", f"{path} is not valid TOML: {one_line(exc)}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None


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
        dataset = _to_str(f"{key}.dataset", rule["dataset"])
        if not DATASET_NAME.fullmatch(dataset):
            raise ConfigError(f"{key}.dataset", DATASET_NAME_RULE)
        built.append(ReviewRule(dataset=dataset, when=rule["when"]))
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
