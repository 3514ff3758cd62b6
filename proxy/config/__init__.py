"""Settings as data: TOML, ``FEEDBACK_PROXY_*`` variables and flags become frozen dataclasses.

``model`` holds the dataclasses, ``load`` turns text into them, ``checks`` holds the rules
across fields and the masking ``check-config`` prints. Imports only ``proxy.core``; pure.
"""

from proxy.config.checks import ConfigError, masked, one_line, validate
from proxy.config.load import load_settings
from proxy.config.model import (
    AdminSettings,
    CaptureSettings,
    FeedbackSettings,
    ImplicitSettings,
    LogSettings,
    ProxySettings,
    RedisSettings,
    ReviewRule,
    Settings,
    StatsSettings,
    UpstreamSettings,
    WriterSettings,
)

__all__ = [
    "AdminSettings",
    "CaptureSettings",
    "ConfigError",
    "FeedbackSettings",
    "ImplicitSettings",
    "LogSettings",
    "ProxySettings",
    "RedisSettings",
    "ReviewRule",
    "Settings",
    "StatsSettings",
    "UpstreamSettings",
    "WriterSettings",
    "load_settings",
    "masked",
    "one_line",
    "validate",
]
