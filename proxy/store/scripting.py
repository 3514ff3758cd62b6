"""The Lua scripts of the store, and how a pipeline queues one.

Scripts are loaded by SHA once per process (``SCRIPT LOAD`` reaches every master of a
cluster) and run with ``EVALSHA``. redis-py's cluster pipeline refuses its ``evalsha``
method, but routes a raw ``EVALSHA`` by its keys like any keyed command; every script here
touches keys of one slot, so ``queue_script`` is the one way to queue a script on either
client.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any


def _lua(name: str) -> str:
    return resources.files("proxy.store").joinpath(f"lua/{name}.lua").read_text()


SCRIPTS = {
    "record_span": _lua("stats_state") + _lua("record_span"),
    "merge_feedback": _lua("stats_state") + _lua("merge_feedback"),
    "stats_apply": _lua("stats_dimensions") + _lua("stats_apply"),
    "stats_calls": _lua("stats_dimensions") + _lua("stats_calls"),
    "set_annotation": _lua("set_annotation"),
    "merge_score": _lua("merge_score"),
    "score_pair_apply": _lua("score_pair_apply"),
    "agreement_read": _lua("agreement_read"),
    "implicit_session": _lua("implicit_session"),
    "mark_implicit": _lua("mark_implicit"),
    "implicit_count": _lua("implicit_count"),
}


def queue_script(pipe: Any, sha: str, keys: Sequence[str], *args: Any) -> None:
    """Queue ``EVALSHA sha`` on a pipeline of a single server or of a cluster."""
    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
