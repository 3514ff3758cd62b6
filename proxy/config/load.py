"""Loading settings once: TOML, environment overrides and CLI flags into ``model``'s classes.

Every value is checked against the field's declared type and range here, so a bad value stops
start-up with one line naming the key (``proxy.port: must be an integer between 1 and 65535``),
instead of failing later inside a request. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from proxy.config.checks import ConfigError, one_line, validate
from proxy.config.model import (
    AdminSettings,
    CaptureSettings,
    FeedbackSettings,
    ImplicitSettings,
    LogSettings,
    OtlpExportSettings,
    ProxySettings,
    RedisSettings,
    ReviewRule,
    Settings,
    StatsSettings,
    UpstreamSettings,
    WriterSettings,
    default_review_rules,
    default_upstreams,
)
from proxy.core.ids import DATASET_NAME, DATASET_NAME_RULE

ENV_PREFIX = "FEEDBACK_PROXY_"
CONFIG_ENV = "FEEDBACK_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/feedback-proxy.toml")


_SECTIONS: dict[str, type[Any]] = {
    "proxy": ProxySettings,
    "admin": AdminSettings,
    "redis": RedisSettings,
    "capture": CaptureSettings,
    "feedback": FeedbackSettings,
    "log": LogSettings,
    "writer": WriterSettings,
    "implicit": ImplicitSettings,
    "stats": StatsSettings,
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
    known = set(_SECTIONS) | {"upstreams", "review", "export"}
    for section in raw:
        if section not in known:
            raise ConfigError(section, f"unknown section (known: {', '.join(sorted(known))})")
    built = {name: _build_section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    upstreams = _build_upstreams(raw.get("upstreams"))
    rules = _build_review_rules(raw.get("review", {}))
    otlp = _build_otlp(raw.get("export", {}))
    return Settings(upstreams=upstreams, review_rules=rules, otlp=otlp, **built)


def _build_otlp(raw: Any) -> OtlpExportSettings:
    """``[export.otlp]``; its ``headers`` table is read apart (string values, any names).

    Header names from the environment (``..._EXPORT__OTLP__HEADERS__X_API_KEY``) have ``_``
    for ``-``: variable names cannot hold a dash, and real header names use no underscore."""
    if not isinstance(raw, dict) or set(raw) - {"otlp"}:
        raise ConfigError("export", "must hold only the [export.otlp] table")
    table = raw.get("otlp", {})
    if not isinstance(table, dict):
        raise ConfigError("export.otlp", "must be a table")
    rest = {key: value for key, value in table.items() if key != "headers"}
    built: OtlpExportSettings = _build_section("export.otlp", OtlpExportSettings, rest)
    headers = table.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError("export.otlp.headers", "must be a table of header = value")
    converted = {
        (name.replace("_", "-") if isinstance(value, _EnvText) else name).lower(): _to_str(
            f"export.otlp.headers.{name}", value
        )
        for name, value in headers.items()
    }
    return replace(built, headers=converted)


def _build_review_rules(raw: Any) -> tuple[ReviewRule, ...]:
    if isinstance(raw, dict) and "rules" not in raw:
        return default_review_rules()
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
    result = default_upstreams()
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
    if isinstance(hint, type) and is_dataclass(hint):  # a sub-table: [capture.redact]
        return _build_section(key, hint, value)
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


def _to_str_map(key: str, value: Any) -> dict[str, str]:
    """A table of strings (``capture.redact.patterns``); each value names its own key."""
    if not isinstance(value, dict):
        raise ConfigError(key, 'must be a table of name = "string"')
    return {name: _to_str(f"{key}.{name}", item) for name, item in value.items()}


_CONVERTERS: dict[Any, Any] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    tuple[str, ...]: _to_str_tuple,
    Mapping[str, str]: _to_str_map,
}
