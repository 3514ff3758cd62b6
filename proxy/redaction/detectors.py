"""Finders for the built-in kinds: where in a text each value of a kind starts and ends.

Speed comes from prefilters: a kind whose tell-tale character or prefix is absent from the text
costs one ``str.find`` (C speed) and runs no regex (no ``@``: no email pass). Secrets are found
from their literal prefixes (``sk-``, ``AKIA``, ``ghp_`` ...) with ``str.find`` and a regex
matched only at those positions. The numeric kinds are checked past their regex: Luhn for cards,
mod 97 for IBANs, a digit count for phones, address parsing and a version-string test for IPs,
so a build number or a timestamp is not taken for personal data.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from proxy.redaction.checksums import iban_ok, luhn_ok

Found = Iterator[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind: ``find(text)`` yields (start, end) of each value; ``normal`` is the form
    hashed in ``hash`` mode, so that one value written two ways hashes the same."""

    kind: str
    find: Callable[[str], Found]
    normal: Callable[[str], str] = str


# -- secret: literal prefixes, a regex at each, a check that the body looks machine-made


@dataclass(frozen=True, slots=True)
class _Prefixed:
    """Keys that start with a literal: ``pattern`` is matched where a trigger is found;
    ``group`` is the part replaced, ``body`` (if any) the part that must look random."""

    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    group: int = 0
    body: int | None = None


# A value starts at a boundary (not inside "task-..." or "mask_live_..."), or right after a
# JSON escape (\n, \r, \t): raw bodies are stored as JSON text, where a newline is "\n".
_ESCAPED = r"|(?<=\\[nrt])"
_B = r"(?:(?<![A-Za-z0-9_\-])" + _ESCAPED + ")"
_E = r"(?![A-Za-z0-9_\-])"


def _p(triggers: str, pattern: str, group: int = 0, body: int | None = None) -> _Prefixed:
    return _Prefixed(tuple(triggers.split()), re.compile(pattern), group, body)


_SECRETS: tuple[_Prefixed, ...] = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-api03-...), DeepSeek...
    _p("sk-", _B + r"sk-([A-Za-z0-9_\-]{20,300})" + _E, body=1),
    _p("sk_live_ sk_test_ rk_live_ rk_test_", _B + r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,255}"),
    _p("whsec_", _B + r"whsec_[A-Za-z0-9+/=]{24,}"),
    _p("AKIA ASIA ABIA ACCA", _B + r"A[KSBC][IC]A[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _p(
        "ccess_key CCESS_KEY ccessKey",
        r"(?i:ccess_?key)[\"']?\s{0,8}[:=]\s{0,8}[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        group=1,
    ),
    _p("ghp_ gho_ ghu_ ghs_ ghr_", _B + r"gh[pousr]_[A-Za-z0-9]{36,255}"),
    _p("github_pat_", _B + r"github_pat_[A-Za-z0-9_]{22,255}"),
    _p("glpat-", _B + r"glpat-[A-Za-z0-9_\-]{20,}"),
    _p("xoxa- xoxb- xoxe- xoxo- xoxp- xoxr- xoxs-", _B + r"xox[abeoprs]-[A-Za-z0-9\-]{10,}"),
    _p("xapp-", _B + r"xapp-[0-9]-[A-Za-z0-9\-]{10,}"),
    _p("hooks.slack.com/", r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,}"),
    _p("AIza", _B + r"AIza[0-9A-Za-z_\-]{35}"),
    _p("GOCSPX-", _B + r"GOCSPX-[A-Za-z0-9_\-]{20,}"),
    _p("ya29.", _B + r"ya29\.[0-9A-Za-z_\-]{20,}"),
    _p("hf_", _B + r"hf_([A-Za-z0-9]{30,})" + _E, body=1),
    _p("npm_", _B + r"npm_[A-Za-z0-9]{36}"),
    _p("pypi-AgE", _B + r"pypi-AgE[A-Za-z0-9_\-]{50,}"),
    _p("SG.", _B + r"SG\.[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    _p("gsk_", _B + r"gsk_[A-Za-z0-9]{40,}"),
    _p("xai-", _B + r"xai-[A-Za-z0-9]{40,}"),
    _p("r8_", _B + r"r8_[A-Za-z0-9]{30,}"),
    _p("pplx-", _B + r"pplx-[A-Za-z0-9]{40,}"),
    _p("dop_v1_ doo_v1_ dor_v1_", _B + r"do[opr]_v1_[a-f0-9]{64}"),
    _p("shpat_ shpss_ shpca_ shppa_", _B + r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    _p("SK", _B + r"SK[0-9a-fA-F]{32}(?![A-Za-z0-9])"),  # Twilio API key
    _p("AccountKey=", r"AccountKey=([A-Za-z0-9+/=]{40,})", group=1),  # Azure storage
    _p("eyJ", _B + r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"),  # JWT
    _p("Bearer", r"Bearer[ \t]+([A-Za-z0-9._~+/=\-]{16,})", group=1, body=1),
    # user:pass@host in a URL: the password goes
    _p("://", r"://[^\s/?#@:\[\]\x00]{0,256}:([^\s/?#@\[\]\x00]{1,256})@", group=1),
    # A private key block; one cut short (capture.max_bytes) is redacted to the end of its body.
    _p(
        "-----BEGIN ",
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[^\x00]{0,16384}?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[rn])*)",
    ),
)


def _randomish(body: str) -> bool:
    """A machine-made key has a digit or mixed case; ``sk-learn-is-a-library`` has neither."""
    return any(c.isdigit() for c in body) or (body.lower() != body and body.upper() != body)


# Each trigger is found by its rarest character (the anchor): one regex per anchor starts
# with that literal, so the regex engine skips to its occurrences at memchr speed, and a
# lookbehind checks the rest of the prefix. Much cheaper than a str.find per trigger.
_ANCHORS = "JKB_AS-:.GPX"  # rarest first in chat text and code


def _anchor_scans() -> list[tuple[re.Pattern[str], list[tuple[_Prefixed, int]]]]:
    """Per anchor character: the scan regex (one branch and one marker group per trigger)
    and, by marker group, the entry to match and how far before the anchor its trigger
    starts."""
    by_anchor: dict[str, list[tuple[str, int, _Prefixed]]] = {}
    for entry in _SECRETS:
        for trigger in entry.triggers:
            k = min(
                (i for i, c in enumerate(trigger) if c in _ANCHORS),
                key=lambda i: _ANCHORS.index(trigger[i]),
            )
            by_anchor.setdefault(trigger[k], []).append((trigger, k, entry))
    scans = []
    for anchor, items in by_anchor.items():
        branches = [f"(?<={re.escape(t[: k + 1])}){re.escape(t[k + 1 :])}()" for t, k, _ in items]
        pattern = re.compile(re.escape(anchor) + "(?:" + "|".join(branches) + ")")
        scans.append((pattern, [(entry, k) for _, k, entry in items]))
    return scans


_SCANS = _anchor_scans()


def _find_secrets(text: str) -> Found:
    for scan, entries in _SCANS:
        hit = scan.search(text)
        while hit is not None:
            entry, back = entries[(hit.lastindex or 1) - 1]
            match = entry.pattern.match(text, hit.start() - back)
            resume = hit.end()
            if match and (entry.body is None or _randomish(match.group(entry.body))):
                yield match.span(entry.group)
                resume = max(resume, match.end())
            hit = scan.search(text, resume)


# -- email: from each "@", the local part to its left and a domain with a TLD to its right

_LOCAL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}$")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")


def _find_emails(text: str) -> Found:
    at = text.find("@")
    while at != -1:
        local = _LOCAL.search(text, max(0, at - 64), at)
        domain = _DOMAIN.match(text, at + 1) if local else None
        if local and domain:
            yield local.start(), domain.end()
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)


# -- numbers: one cheap pass finds runs of digits and separators long enough to be a card,
# an IBAN's account part, a phone number or an IPv4 address; the kinds' own regexes and checks
# then run on those windows only (a text's other digits cost nothing more).

_RUN = re.compile(r"[0-9][0-9 .\-()/]{5,}[0-9]")
_CARD = re.compile(r"(?:(?<![\w.\-+])" + _ESCAPED + r")[0-9](?:[ \-]?[0-9]){12,60}(?![\w])")
_IBAN = re.compile(
    r"(?:(?<![A-Za-z0-9])" + _ESCAPED + r")[A-Z]{2}[0-9]{2}"
    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![A-Za-z0-9])"
)
_PHONE = re.compile(
    r"(?:(?<![\w+\-.])" + _ESCAPED + r")(?:"
    r"\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(?[2-9][0-9]{2}\)?[ .\-]?[0-9]{3}[ .\-][0-9]{4}"  # (555) 123-4567, 555.123.4567
    r")(?![\w\-]|\.[0-9])"
)
_IPV4 = re.compile(
    r"(?:(?<![\w.\-])" + _ESCAPED + r")(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![\w\-]|\.[0-9])"
)
_IPV6_SEED = re.compile(r":(?::|[0-9A-Fa-f]{1,4}:)")
_IPV6 = re.compile(
    r"(?:(?<![\w:.])"
    + _ESCAPED
    + r")(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?![\w:]|\.[0-9])"
)
_VERSION_BEFORE = re.compile(r"(?i)(?<![a-z])(?:version|ver\.?|release|build|v)[ :]*$")
_HEXCOLON = frozenset("0123456789abcdefABCDEF:.")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_IBAN_REACH = 34  # an IBAN's letters may start this far before its digits


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


@lru_cache(maxsize=1)
def _run_spans(text: str) -> tuple[tuple[int, int], ...]:
    """The long digit runs of a text, found once for all the numeric kinds, which run one
    after the other on the same text; ``forget()`` drops the text once they are done."""
    return tuple(run.span() for run in _RUN.finditer(text))


def forget() -> None:
    """Let go of the last text scanned (it may be a whole record's captured text)."""
    _run_spans.cache_clear()


def _in_runs(
    pattern: re.Pattern[str], text: str, before: int = 1, shortest: int = 7, needs: str = ""
) -> Iterator[re.Match[str]]:
    """``pattern``'s matches around the digit runs at least ``shortest`` long (holding
    ``needs``), with ``before`` chars of context on the left (a ``+``, a ``(``, an IBAN's
    letters) and two on the right, so its boundary checks see the real neighbours."""
    end = 0
    for run_start, run_end in _run_spans(text):
        if run_end - run_start < shortest or (needs and needs not in text[run_start:run_end]):
            continue
        start, stop = max(0, run_start - before, end), min(len(text), run_end + 2)
        for match in pattern.finditer(text, start, stop):
            end = match.end()
            yield match


def _find_cards(text: str) -> Found:
    for match in _in_runs(_CARD, text, shortest=13):
        yield from _card_in(match)


def _groups(match: re.Match[str]) -> list[tuple[int, int]]:
    """Spans of the digit groups of a match (split at its separators)."""
    return [group.span() for group in _DIGIT_GROUP.finditer(match.string, *match.span())]


def _card_in(match: re.Match[str]) -> Found:
    """The card numbers in a run of digit groups: the longest run of whole groups with one
    kind of separator, 13 to 19 digits, a card's first digit and a valid Luhn check.
    A run like ``2024 4111 1111 1111 1111`` still yields the card inside it."""
    text, groups = match.string, _groups(match)
    i = 0
    while i < len(groups):
        for j in range(len(groups), i, -1):
            start, end = groups[i][0], groups[j - 1][1]
            value = text[start:end]
            digits = _digits(value)
            one_separator = len({c for c in value if not c.isdigit()}) <= 1
            card_like = 13 <= len(digits) <= 19 and digits[0] in "23456" and one_separator
            if card_like and luhn_ok(digits):
                yield start, end
                i = j - 1
                break
        i += 1


def _find_ibans(text: str) -> Found:
    for match in _in_runs(_IBAN, text, before=_IBAN_REACH):
        if iban_ok(match.group().replace(" ", "")):
            yield match.span()


def _find_phones(text: str) -> Found:
    for match in _in_runs(_PHONE, text):
        for _, end in reversed(_groups(match)):  # the whole match, then without its tail
            value = text[match.start() : end]
            plausible = 8 <= len(_digits(value)) <= 15 and value.count("(") == value.count(")")
            whole = end == match.end() or _PHONE.fullmatch(text, match.start(), end)
            if plausible and whole:
                yield match.start(), end
                break


def _find_ips(text: str) -> Found:
    for match in _in_runs(_IPV4, text, needs="."):
        if not _VERSION_BEFORE.search(text, max(0, match.start() - 12), match.start()):
            yield match.span()
    yield from _find_ipv6(text)


def _find_ipv6(text: str) -> Found:
    """From each ``::`` or ``:hex:``, back over hex digits to where an address could start."""
    seed = _IPV6_SEED.search(text)
    while seed is not None:
        start = seed.start()
        while start > 0 and seed.start() - start < 40 and text[start - 1] in _HEXCOLON:
            start -= 1
        match = _IPV6.match(text, start) or _IPV6.match(text, seed.start())
        resume = seed.start() + 1
        if match and match.end() > seed.start() and _is_ipv6(match.group()):
            yield match.span()
            resume = match.end()
        seed = _IPV6_SEED.search(text, resume)


def _is_ipv6(value: str) -> bool:
    if not value.strip(":.") or (value.endswith(":") and not value.endswith("::")):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


DETECTORS: dict[str, Detector] = {
    "secret": Detector("secret", _find_secrets),
    "email": Detector("email", _find_emails, str.lower),
    "credit_card": Detector("credit_card", _find_cards, _digits),
    "iban": Detector("iban", _find_ibans, lambda v: v.replace(" ", "")),
    "phone": Detector("phone", _find_phones, _digits),
    "ip": Detector("ip", _find_ips, str.lower),
}
"""Built-in kinds in priority order: when two values overlap, the earlier kind names both."""
