"""The settings as frozen dataclasses: one class per TOML section, defaults in the fields.

Only data: reading TOML and the environment is ``load``, the rules across fields ``checks``.
``config/feedback-proxy.toml`` documents every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    max_connections: int = 128


@dataclass(frozen=True, slots=True)
class WriterSettings:
    spool_dir: str = ".feedback-proxy/spool"
    queue_size: int = 10000
    batch_size: int = 256
    write_timeout: float = 1.0


# The kinds of value redaction knows (proxy.redaction finds them); docs/privacy.md.
REDACT_KINDS = ("secret", "email", "phone", "credit_card", "iban", "ip")


@dataclass(frozen=True, slots=True)
class RedactSettings:
    """``[capture.redact]``: what is replaced in captured text before it is stored."""

    kinds: tuple[str, ...] = ("secret",)
    mode: str = "mask"
    patterns: Mapping[str, str] = field(default_factory=dict)  # name -> regex
    key: str = ""  # HMAC key of hash mode; derived from feedback.token_secret when empty


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    record: bool = True
    bodies: bool = True
    max_bytes: int = 262144
    redact: RedactSettings = field(default_factory=RedactSettings)


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
class ImplicitSettings:
    """Implicit feedback observed in traffic (docs/reference.md §12)."""

    enabled: bool = True
    regenerate_window_seconds: int = 600


@dataclass(frozen=True, slots=True)
class StatsSettings:
    """Trace attribute keys whose values the stats count feedback, calls and cost by."""

    dimensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewRule:
    """Traces whose feedback matches ``when`` join ``dataset`` as rows to annotate."""

    dataset: str
    when: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class OtlpExportSettings:
    """``[export.otlp]``: spans and feedback events to an OpenTelemetry collector (§10)."""

    endpoint: str = ""  # empty = off
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bool = False
    batch_size: int = 512
    timeout: float = 10.0
    max_attempts: int = 5
    max_backoff: float = 10.0
    lease_seconds: float = 30.0
    service_name: str = "feedback-proxy"


def default_upstreams() -> dict[str, UpstreamSettings]:
    return {
        "openai": UpstreamSettings(base_url="https://api.openai.com"),
        "anthropic": UpstreamSettings(base_url="https://api.anthropic.com"),
    }


def default_review_rules() -> tuple[ReviewRule, ...]:
    return (
        ReviewRule(dataset="review", when={"user_feedback": "negative"}),
        ReviewRule(dataset="low-ratings", when={"user_feedback_rating": {"lte": 2}}),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    proxy: ProxySettings = field(default_factory=ProxySettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    upstreams: Mapping[str, UpstreamSettings] = field(default_factory=default_upstreams)
    redis: RedisSettings = field(default_factory=RedisSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    log: LogSettings = field(default_factory=LogSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    review_rules: tuple[ReviewRule, ...] = field(default_factory=default_review_rules)
    implicit: ImplicitSettings = field(default_factory=ImplicitSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    otlp: OtlpExportSettings = field(default_factory=OtlpExportSettings)
