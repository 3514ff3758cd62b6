"""The redactor: finds the configured kinds in a text and replaces each value with a token.

``mask`` writes ``[REDACTED:email]``; ``hash`` writes ``[email:<12 hex>]``, the start of an
HMAC-SHA256 of the value under a secret key, so one address stays one token across spans (and
cannot be guessed back without the key). Redaction is idempotent: a token already in the text is
never matched again, and overlapping values are replaced as one, so nothing a pattern matches is
left behind. Values nested deeper than ``MAX_DEPTH`` are redacted as their JSON text.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import orjson

from proxy.config.checks import ConfigError, compile_redact_pattern
from proxy.config.model import REDACT_KINDS
from proxy.redaction.detectors import DETECTORS, Detector, forget

BUILTIN_KINDS = tuple(DETECTORS)
MODES = ("mask", "hash")
MAX_DEPTH = 64
# What this module writes: never matched again, whatever the kinds (idempotence).
TOKEN = re.compile(r"\[(?:REDACTED:[a-z0-9_]{1,32}|[a-z0-9_]{1,32}:[0-9a-f]{12})\]")
_HASH_HEX = 12
_SEP = "\x00"  # joins a value's strings; JSON text may hold it only escaped, as \u0000
assert set(BUILTIN_KINDS) == set(REDACT_KINDS), "config and detectors name the same kinds"


def _pattern_detector(name: str, compiled: re.Pattern[str]) -> Detector:
    """An operator's pattern as a kind of its own (hashed as matched: no normal form)."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        return (m.span() for m in compiled.finditer(text) if m.end() > m.start())

    return Detector(name, find)


class Redactor:
    """Replaces values of the chosen kinds; counts how many of each it replaced."""

    __slots__ = ("_detectors", "_key", "_mode", "kinds")

    def __init__(
        self,
        kinds: Iterable[str] = ("secret",),
        mode: str = "mask",
        patterns: Mapping[str, str] | None = None,
        key: bytes = b"",
    ) -> None:
        chosen = set(kinds)
        unknown = chosen - set(BUILTIN_KINDS)
        if unknown:
            known = ", ".join(BUILTIN_KINDS)
            raise ConfigError("capture.redact.kinds", f"unknown {sorted(unknown)} ({known})")
        if mode not in MODES:
            raise ConfigError("capture.redact.mode", f"must be one of {', '.join(MODES)}")
        if mode == "hash" and not key:
            raise ConfigError("capture.redact.key", "hash mode needs a key")
        self._detectors = [DETECTORS[kind] for kind in BUILTIN_KINDS if kind in chosen]
        for name, pattern in (patterns or {}).items():
            self._detectors.append(_pattern_detector(name, compile_redact_pattern(name, pattern)))
        self.kinds = tuple(d.kind for d in self._detectors)
        self._mode = mode
        self._key = key

    def text(self, text: str, counts: dict[str, int]) -> str:
        """``text`` with every value replaced by its token; adds to ``counts`` per kind."""
        found = self._find(text)
        if not found:
            return text
        pieces: list[str] = []
        end = 0
        for start, stop, rank in _merged(found):
            detector = self._detectors[rank]
            pieces.append(text[end:start])
            pieces.append(self._token(detector, text[start:stop]))
            counts[detector.kind] = counts.get(detector.kind, 0) + 1
            end = stop
        pieces.append(text[end:])
        return "".join(pieces)

    def value(self, value: Any, counts: dict[str, int]) -> Any:
        """A JSON value with every string redacted (keys are left alone): the same object
        when nothing was found, else a copy with the changed strings.

        The strings are joined with NUL and redacted as one text, so a record of many short
        strings pays the detectors' fixed cost once; no value is allowed to cross a NUL."""
        strings = list(_strings(value, 0))
        if not strings:
            return value
        joined = _SEP.join(strings)
        if joined.count(_SEP) != len(strings) - 1:  # a string holds NUL itself
            return _rebuild(value, iter([(t, self.text(t, counts)) for t in strings]), 0)
        redacted = self.text(joined, counts)
        if redacted is joined:
            return value
        return _rebuild(value, zip(strings, redacted.split(_SEP), strict=True), 0)

    def _find(self, text: str) -> list[tuple[int, int, int]]:
        # Our own tokens are blanked (same length, NUL: a boundary for every kind) before the
        # detectors run, so they are never matched, nor glue a neighbour to a word.
        tokens = [m.span() for m in TOKEN.finditer(text)] if "[" in text else []
        scanned = _blanked(text, tokens) if tokens else text
        found = [
            (start, stop, rank)
            for rank, detector in enumerate(self._detectors)
            for start, stop in detector.find(scanned)
        ]
        forget()
        if found and tokens:
            found = [f for f in (_outside(f, tokens) for f in found) if f[1] > f[0]]
        if found and _SEP in text:  # joined strings: a value ends where its string ends
            found = [f for f in map(partial(_clipped, text), found) if f[1] > f[0]]
        return found

    def _token(self, detector: Detector, value: str) -> str:
        if self._mode == "mask":
            return f"[REDACTED:{detector.kind}]"
        message = f"{detector.kind}\0{detector.normal(value)}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()
        return f"[{detector.kind}:{digest[:_HASH_HEX]}]"


def _clipped(text: str, found: tuple[int, int, int]) -> tuple[int, int, int]:
    start, stop, rank = found
    cut = text.find(_SEP, start, stop)
    return (start, cut, rank) if cut != -1 else found


def _strings(value: Any, depth: int) -> Iterator[str]:
    """The strings of a JSON value in walk order (a too-deep part as its JSON text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list) and depth >= MAX_DEPTH:
        yield orjson.dumps(value).decode()
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)


def _rebuild(value: Any, texts: Iterator[tuple[str, str]], depth: int) -> Any:
    """``value`` with its strings replaced, in ``_strings`` order, by their redacted forms."""
    if isinstance(value, str) or (isinstance(value, dict | list) and depth >= MAX_DEPTH):
        original, redacted = next(texts)
        return value if redacted == original else redacted
    if isinstance(value, list):
        return [_rebuild(item, texts, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _rebuild(item, texts, depth + 1) for key, item in value.items()}
    return value


def _blanked(text: str, tokens: list[tuple[int, int]]) -> str:
    pieces, end = [], 0
    for start, stop in tokens:
        pieces += [text[end:start], _SEP * (stop - start)]
        end = stop
    pieces.append(text[end:])
    return "".join(pieces)


def _outside(found: tuple[int, int, int], tokens: list[tuple[int, int]]) -> tuple[int, int, int]:
    """A value cut at the first token it reaches (empty if it starts inside one)."""
    start, stop, rank = found
    for t_start, t_stop in tokens:
        if start < t_stop and t_start < stop:
            return (start, max(start, t_start), rank)
    return found


def _merged(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Overlapping values become one, named after the first (then the higher-priority kind):
    nothing of either is left for a later pass to find."""
    found.sort(key=lambda f: (f[0], f[2]))
    merged = [found[0]]
    for start, stop, rank in found[1:]:
        last_start, last_stop, last_rank = merged[-1]
        if start < last_stop:
            merged[-1] = (last_start, max(stop, last_stop), last_rank)
        else:
            merged.append((start, stop, rank))
    return merged
