"""The ``feedback-proxy`` command (also ``python -m proxy``)."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import orjson
import structlog

from proxy.log import configure_logging
from proxy.settings import ConfigError, Settings, load_settings, masked


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-proxy", description="LLM reverse proxy that closes the user-feedback loop."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy")
    _add_settings_flags(serve)
    check = commands.add_parser("check-config", help="print the effective settings, secrets masked")
    _add_settings_flags(check)
    return parser


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="TOML file (default: config/feedback-proxy.toml if present)"
    )
    parser.add_argument("--upstream", help="base URL of the default upstream")
    parser.add_argument("--redis", help="Redis URL (default: the embedded Redis)")
    parser.add_argument("--host", help="proxy listener address")
    parser.add_argument("--port", type=int, help="proxy listener port")
    parser.add_argument("--admin-port", type=int, help="admin listener port")
    parser.add_argument("--workers", type=int, help="processes sharing the port")


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("redis", "redis.url"),
        ("host", "proxy.host"),
        ("port", "proxy.port"),
        ("admin_port", "admin.port"),
        ("workers", "proxy.workers"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    settings = load_settings(args.config, overrides=overrides)
    if args.upstream:
        # --upstream retargets the default upstream; validated like the file's base_url.
        name = settings.proxy.default_upstream
        settings = load_settings(
            args.config, overrides={**overrides, f"upstreams.{name}.base_url": args.upstream}
        )
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"feedback-proxy: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        sys.stdout.buffer.write(orjson.dumps(masked(settings), option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    return _serve(settings)


def _serve(settings: Settings) -> int:
    from proxy.server import run
    from proxy.store.embedded import EmbeddedRedis, EmbeddedRedisError

    configure_logging(settings.log.level, settings.log.format)
    log = structlog.get_logger("proxy")
    with ExitStack() as stack:
        if not settings.redis.url:
            embedded = EmbeddedRedis(settings.redis.data_dir)
            try:
                url = embedded.start()
            except EmbeddedRedisError as exc:
                print(f"feedback-proxy: embedded Redis: {exc}", file=sys.stderr)
                return 1
            stack.callback(embedded.stop)
            log.info(
                "embedded redis (the default; set redis.url to use your own)",
                data_dir=str(embedded.data_dir),
                url=url,
            )
            settings = replace(settings, redis=replace(settings.redis, url=url))
        else:
            log.info("redis", url=masked(settings)["redis"]["url"])
        return run(_with_token_secret(settings, log))


def _with_token_secret(settings: Settings, log: Any) -> Settings:
    """One secret for every worker of this start; replicas must share a configured one."""
    if settings.feedback.token_secret:
        return settings
    log.warning("feedback.token_secret is not set: feedback tokens last until a restart")
    secret = secrets.token_hex(32)
    return replace(settings, feedback=replace(settings.feedback, token_secret=secret))
