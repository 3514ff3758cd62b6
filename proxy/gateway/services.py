"""What the proxy listener's handlers use, built once by ``proxy.runtime.services``.

A narrow, typed view: handlers get exactly these (``request.app[GATEWAY]``), fully built
before the listener accepts its first call.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from proxy.config import Settings
from proxy.core.lifecycle import Lifecycle
from proxy.feedback.parse import FeedbackRules
from proxy.feedback.service import FeedbackService
from proxy.gateway.upstream import Router
from proxy.metrics.calls import CallMetrics
from proxy.writer import Writer


@dataclass(frozen=True, slots=True)
class GatewayServices:
    settings: Settings
    router: Router
    session: aiohttp.ClientSession
    writer: Writer
    feedback: FeedbackService
    feedback_rules: FeedbackRules
    token_secret: bytes
    hash_key: bytes  # of the implicit input hash (redaction.hash_key)
    call_metrics: CallMetrics
    lifecycle: Lifecycle


GATEWAY = web.AppKey("gateway_services", GatewayServices)
