"""The ``feedback-proxy`` command (also ``python -m proxy``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import structlog

from proxy.cli.admin_client import (
    AdminError,
    AdminTarget,
    TerminalProgress,
    admin_target,
    export_dataset,
    format_traces,
    list_traces,
)
from proxy.config import ConfigError, Settings, load_settings, masked
from proxy.runtime.log import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-proxy", description="LLM reverse proxy that closes the user-feedback loop."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy")
    _add_settings_flags(serve)
    check = commands.add_parser("check-config", help="print the effective settings, secrets masked")
    _add_settings_flags(check)
    _add_traces_parser(commands)
    _add_export_parser(commands)
    return parser


# (flag, query parameter, help) of `traces`; each takes one value passed on as is.
_TRACE_FILTERS = (
    ("--rating-min", "rating_min", "lowest user_feedback_rating, 1-5"),
    ("--rating-max", "rating_max", "highest user_feedback_rating, 1-5"),
    ("--category", "category", "user_feedback_category"),
    ("--reason", "reason", "feedback_reason"),
    ("--model", "model", "a model used by one of its spans"),
    ("--upstream", "upstream", "an upstream one of its spans went to"),
    ("--session-id", "session_id", "session id"),
    ("--user-id", "user_id", "user id"),
    ("--since", "since", "from this moment (ISO 8601 with zone, a date, or epoch ms)"),
    ("--until", "until", "up to this moment (ISO 8601 with zone, a date, or epoch ms)"),
    ("--cost-min", "cost_min", "lowest trace cost in USD"),
    ("--cost-max", "cost_max", "highest trace cost in USD"),
    ("--limit", "limit", "traces per page (1-500, default 50)"),
    ("--cursor", "cursor", "next_cursor of an earlier page"),
    ("--score", "score", "has an evaluator score of this name"),
    ("--score-label", "score_label", "<name>:<label>: has such an evaluator score"),
)
_TRACE_CHOICES = (
    ("--feedback", "feedback", ("positive", "negative")),
    ("--annotation-status", "annotation_status", ("empty", "filled")),
    ("--has-feedback", "has_feedback", ("true", "false")),
    ("--implicit", "implicit", ("regenerated", "stopped")),
)


def _add_traces_parser(commands: Any) -> None:
    traces = commands.add_parser("traces", help="list recorded traces from the admin API")
    for flag, param, allowed in _TRACE_CHOICES:
        traces.add_argument(flag, dest=param, choices=allowed)
    for flag, param, text in _TRACE_FILTERS:
        traces.add_argument(flag, dest=param, help=text)
    traces.add_argument("--tag", dest="tag", action="append", default=[], help="repeatable")
    traces.add_argument("--json", action="store_true", help="print the API's JSON answer")
    _add_admin_flags(traces)


def _add_export_parser(commands: Any) -> None:
    export = commands.add_parser("export", help="write a dataset as jsonl, csv or json")
    export.add_argument("dataset", help="dataset name")
    export.add_argument("--format", required=True, choices=("jsonl", "csv", "json"))
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.add_argument("--annotation-status", choices=("empty", "filled"))
    _add_admin_flags(export)


def _add_admin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="TOML file (default: config/feedback-proxy.toml if present)"
    )
    parser.add_argument(
        "--admin-url", help="admin API base URL (default: from admin.host and admin.port)"
    )


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="TOML file (default: config/feedback-proxy.toml if present)"
    )
    parser.add_argument("--upstream", help="base URL of the default upstream")
    parser.add_argument(
        "--anthropic-upstream",
        help="base URL of the anthropic upstream (upstreams.anthropic.base_url)",
    )
    parser.add_argument("--redis", help="Redis URL (default: the embedded Redis)")
    parser.add_argument(
        "--redis-cluster",
        action="store_const",
        const=True,
        help="--redis names a seed node of a Redis Cluster (redis.cluster = true)",
    )
    parser.add_argument("--host", help="proxy listener address")
    parser.add_argument("--port", type=int, help="proxy listener port")
    parser.add_argument("--admin-port", type=int, help="admin listener port")
    parser.add_argument("--workers", type=int, help="processes sharing the port")


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("redis", "redis.url"),
        ("redis_cluster", "redis.cluster"),
        ("host", "proxy.host"),
        ("port", "proxy.port"),
        ("admin_port", "admin.port"),
        ("workers", "proxy.workers"),
        ("anthropic_upstream", "upstreams.anthropic.base_url"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    settings = load_settings(args.config, overrides=overrides)
    if args.upstream:
        # --upstream retargets the default upstream; validated like the file's base_url. A flag
        # naming the upstream (--anthropic-upstream) is more specific and wins over it.
        name = settings.proxy.default_upstream
        settings = load_settings(
            args.config, overrides={f"upstreams.{name}.base_url": args.upstream, **overrides}
        )
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _admin_settings(args) if _is_admin(args) else settings_from_args(args)
    except ConfigError as exc:
        print(f"feedback-proxy: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        shown = {**masked(settings), "price_data": _price_data()}
        sys.stdout.buffer.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    if _is_admin(args):
        return _run_admin(args, settings)
    return _serve(settings)


def _price_data() -> dict[str, str]:
    """Which price data prices spans: the genai-prices release, pinned by the lock file."""
    from proxy.recording.pricing import price_data_version

    return {"package": "genai-prices", "version": price_data_version()}


def _is_admin(args: argparse.Namespace) -> bool:
    return args.command in ("traces", "export")


def _admin_settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _run_admin(args: argparse.Namespace, settings: Settings) -> int:
    """``traces`` / ``export``: one clear line on stderr and exit 1 when the admin API fails."""
    target = admin_target(settings, args.admin_url)
    try:
        if args.command == "traces":
            return asyncio.run(_traces(args, target))
        return _export(args, target)
    except AdminError as error:
        print(f"feedback-proxy: {error.message}", file=sys.stderr)
        return 1


async def _traces(args: argparse.Namespace, target: AdminTarget) -> int:
    params = [(name, getattr(args, name)) for name in _trace_params() if getattr(args, name)]
    params += [("tag", tag) for tag in args.tag]
    page = await list_traces(target, params)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(page) + b"\n")
    else:
        sys.stdout.write(format_traces(page))
    sys.stdout.flush()
    return 0


def _trace_params() -> list[str]:
    return [param for _, param, _ in _TRACE_CHOICES] + [param for _, param, _ in _TRACE_FILTERS]


def _export(args: argparse.Namespace, target: AdminTarget) -> int:
    progress = TerminalProgress() if sys.stderr.isatty() else None
    if args.output is None:
        sink = sys.stdout.buffer
        sys.stdout.flush()
        asyncio.run(
            export_dataset(
                target, args.dataset, args.format, sink, args.annotation_status, progress
            )
        )
        return 0
    path = Path(args.output)
    try:
        sink = path.open("wb")
    except OSError as exc:
        raise AdminError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with sink:
            asyncio.run(
                export_dataset(
                    target, args.dataset, args.format, sink, args.annotation_status, progress
                )
            )
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written file left behind
        raise
    return 0


def _serve(settings: Settings) -> int:
    from proxy.runtime.server import run
    from proxy.runtime.services import ensure_token_secret
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
        return run(ensure_token_secret(settings))  # before forking: one secret for all
