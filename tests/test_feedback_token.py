"""Signed, expiring browser feedback tokens (docs/reference.md §4, POST /feedback)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest

from proxy.core.errors import Unauthorized
from proxy.feedback.token import issue, verify

SECRET = b"s" * 32
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
NOW = 1_800_000_000
EXP = NOW + 3600
HEADER_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def token(trace_id: str = TRACE, span_id: str = SPAN, expires_at: int = EXP) -> str:
    return issue(SECRET, trace_id, span_id, expires_at)


def refused(value: str, now: int = NOW, secret: bytes = SECRET) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        verify(secret, value, now)
    assert info.value.status == 401
    return info.value


def invalid(value: str, secret: bytes = SECRET) -> None:
    assert refused(value, secret=secret).code == "invalid_feedback_token"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_round_trip() -> None:
    """A fresh token verifies to its own trace and span."""
    assert verify(SECRET, token(), NOW) == (TRACE, SPAN)


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        ("my.trace:id-1_x", "span.with:dots-1"),
        ("a", "b"),
        ("T" * 128, "S" * 128),
        ("a.b.c.d.e", "f.g"),
    ],
)
def test_round_trip_with_custom_ids(trace_id: str, span_id: str) -> None:
    """Trace and span IDs with dots, colons and dashes survive the round trip."""
    assert verify(SECRET, token(trace_id, span_id), NOW) == (trace_id, span_id)


def test_token_is_valid_until_its_expiry_second() -> None:
    """At `now == expires_at` the token still verifies; one second later it has expired."""
    assert verify(SECRET, token(expires_at=NOW), NOW) == (TRACE, SPAN)
    error = refused(token(expires_at=NOW), now=NOW + 1)
    assert error.code == "expired_feedback_token"
    assert error.message == "feedback token expired"


def test_long_expired_token_is_expired() -> None:
    """A token expired long ago is 401 expired."""
    assert refused(token(expires_at=0)).code == "expired_feedback_token"


def test_tampered_signature_is_invalid() -> None:
    """Changing any character of the signature makes the token invalid."""
    good = token()
    for i in range(good.rindex(".") + 1, len(good)):
        swapped = "A" if good[i] != "A" else "B"
        invalid(good[:i] + swapped + good[i + 1 :])


def test_tampered_trace_span_or_expiry_is_invalid() -> None:
    """Each signed field is covered: swapping in another trace, span or expiry is invalid."""
    version, trace_part, span_part, expiry, signature = token().split(".")
    invalid(".".join([version, b64("another-trace"), span_part, expiry, signature]))
    invalid(".".join([version, trace_part, b64("ffffffffffffffff"), expiry, signature]))
    invalid(".".join([version, trace_part, span_part, str(EXP + 86400), signature]))
    invalid(".".join(["v2", trace_part, span_part, expiry, signature]))
    invalid(".".join([version, span_part, trace_part, expiry, signature]))


def test_tampered_expiry_reads_as_invalid_not_expired() -> None:
    """The signature is checked first: a changed expiry never yields 'expired'."""
    version, trace_part, span_part, _, signature = token().split(".")
    invalid(".".join([version, trace_part, span_part, str(NOW - 10), signature]))


def test_truncated_token_is_invalid() -> None:
    """Every proper prefix of a token is invalid."""
    good = token()
    for end in range(len(good)):
        invalid(good[:end])


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "v1....",
        "v1.a.b.c.d",
        "Bearer x",
        f"v1.YQ.Yg.{EXP}." + "A" * 43,  # well formed, never signed
        "\u00e9" * 60,
        "v1." + "A" * 5000,
    ],
)
def test_garbage_is_invalid(value: str) -> None:
    """Anything that is not a token this proxy signed is 401 invalid, never a crash."""
    invalid(value)


def test_extra_characters_make_a_token_invalid() -> None:
    """Padding, whitespace or a trailing dot around a good token are not accepted."""
    good = token()
    for altered in (good + "=", good + ".", " " + good, good + " ", good + "\n", "." + good):
        invalid(altered)


def test_leading_zero_expiry_is_invalid() -> None:
    """The expiry has one spelling only (no leading zeros), so it cannot be re-spelled."""
    version, trace_part, span_part, expiry, signature = token().split(".")
    invalid(".".join([version, trace_part, span_part, "0" + expiry, signature]))


def test_wrong_secret_is_invalid() -> None:
    """A token signed with another secret does not verify."""
    invalid(token(), secret=b"t" * 32)
    invalid(token(), secret=SECRET + b"x")


def test_empty_secret_is_refused() -> None:
    """An empty secret is a wiring error (anyone could sign): ValueError on both sides."""
    with pytest.raises(ValueError, match="secret"):
        issue(b"", TRACE, SPAN, EXP)
    with pytest.raises(ValueError, match="secret"):
        verify(b"", token(), NOW)


def test_token_for_one_trace_never_verifies_as_another() -> None:
    """Tokens are bound to their trace and span: A's token verifies as A, with A's span."""
    a, b = "trace-a", "trace-b"
    assert verify(SECRET, token(a, SPAN), NOW) == (a, SPAN)
    assert verify(SECRET, token(b, SPAN), NOW) == (b, SPAN)
    assert token(a, SPAN) != token(b, SPAN)
    assert token(TRACE, "1111111111111111") != token(TRACE, "2222222222222222")


def test_ids_cannot_shift_between_fields() -> None:
    """Trace 'a.b' with span 'c' and trace 'a' with span 'b.c' give different tokens."""
    first, second = token("a.b", "c"), token("a", "b.c")
    assert first != second
    assert verify(SECRET, first, NOW) == ("a.b", "c")
    assert verify(SECRET, second, NOW) == ("a", "b.c")


def test_token_is_header_safe() -> None:
    """Tokens are ASCII letters, digits, '-', '_' and '.': no spaces, commas or padding."""
    for trace_id in (TRACE, "x" * 128, "a.b:c-d_e", "ü-not-an-id-but-still-safe"):
        value = token(trace_id)
        assert HEADER_SAFE.fullmatch(value), value
        assert value.startswith("v1.")


def test_module_is_pure() -> None:
    """Importing feedback_token loads neither aiohttp nor redis."""
    code = (
        "import sys, proxy.feedback.token; "
        "print([m for m in ('aiohttp', 'redis') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
