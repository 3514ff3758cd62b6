"""Which parser reads a call, from its method and the path sent upstream (pure).

Routes match on the path's ending segments, so ``/v1/chat/completions`` and an Azure-style
``/openai/deployments/{name}/chat/completions`` read alike. Only ``POST`` is parsed; anything
else (and any unknown path) gets ``None`` and is recorded without model or usage. OpenAI
Assistants' ``/threads/{id}/messages`` is not Anthropic's ``/messages`` and is left alone.
"""

from __future__ import annotations

from proxy.recording.providers import (
    anthropic_messages,
    openai_chat,
    openai_completions,
    openai_embeddings,
    openai_responses,
)
from proxy.recording.providers.base import EndpointParser

# Most specific first: "/chat/completions" also ends in "/completions".
ROUTES: tuple[tuple[str, EndpointParser], ...] = (
    ("/chat/completions", openai_chat.PARSER),
    ("/completions", openai_completions.PARSER),
    ("/responses", openai_responses.PARSER),
    ("/embeddings", openai_embeddings.PARSER),
    ("/messages", anthropic_messages.PARSER),
)


def parser_for(method: str, path: str) -> EndpointParser | None:
    """The parser for a ``POST`` to a known endpoint path (query stripped), else ``None``."""
    if method.upper() != "POST":
        return None
    normalized = "/" + path.strip("/")
    if "/threads/" in normalized:
        return None
    for suffix, parser in ROUTES:
        if normalized.endswith(suffix):
            return parser
    return None
