"""Properties of the redactor over generated text: idempotent, leaves nothing its own patterns
match, removes every planted value, and never changes text with nothing to find."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy.redaction import BUILTIN_KINDS, Redactor
from proxy.redaction.checksums import luhn_ok
from proxy.redaction.redactor import TOKEN
from tests.properties import examples
from tests.test_redaction import SECRETS

MASK = Redactor(BUILTIN_KINDS, patterns={"ticket": r"TKT-[0-9]{4,}"})
HASH = Redactor(BUILTIN_KINDS, "hash", patterns={"ticket": r"TKT-[0-9]{4,}"}, key=b"k")

# Text that looks like chat: words, digits, and the punctuation the patterns care about.
_pieces = st.sampled_from(
    [*"abcdeKSJBAxyz019 .-_:@/+()[]=\né😀", "::", "sk-", "ghp_", "eyJ", "@ex.com", "REDACTED"]
)
chat_text = st.lists(_pieces, max_size=60).map("".join)
any_text = st.text(max_size=200)


def card(prefix: str, body: str) -> str:
    """A Luhn-valid number: ``prefix`` + ``body`` + the check digit that makes it pass."""
    partial = prefix + body
    return next(partial + d for d in "0123456789" if luhn_ok(partial + d))


emails = st.builds(
    "{}@{}.{}".format,
    st.from_regex(r"[a-z][a-z0-9._+]{0,10}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
    st.sampled_from(["com", "org", "io", "co.uk"]),
)
cards = st.builds(
    card, st.sampled_from(["4", "51", "37", "6011"]), st.from_regex(r"[0-9]{12}", fullmatch=True)
)
phones = st.builds("+{} {} {}".format, st.sampled_from(["44", "49", "1"]),
                   st.from_regex(r"[1-9][0-9]{2}", fullmatch=True),
                   st.from_regex(r"[0-9]{7}", fullmatch=True))  # fmt: skip
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str).filter(lambda ip: ip != "::")  # "::" alone: kept
planted = st.one_of(st.sampled_from(SECRETS), emails, cards, phones, ipv4, ipv6)


def leftovers(redactor: Redactor, text: str) -> list[str]:
    """What the redactor's own patterns still find in ``text``, outside its tokens."""
    found = redactor._find(text)  # the redactor's own matcher, tokens already excluded
    return [text[start:stop] for start, stop, _ in found]


@examples(200)
@given(st.one_of(chat_text, any_text))
def test_redaction_is_idempotent_and_leaves_no_match(text: str) -> None:
    """Redacting redacted text changes nothing; none of the patterns matches what is left."""
    for redactor in (MASK, HASH):
        once = redactor.text(text, {})
        counts: dict[str, int] = {}
        assert redactor.text(once, counts) == once
        assert counts == {}
        assert leftovers(redactor, once) == []


@examples(200)
@given(chat_text, planted, chat_text)
def test_a_planted_value_never_survives(before: str, value: str, after: str) -> None:
    """A secret, address, card, phone or IP between spaces is gone from the stored text."""
    text = f"{before} {value} {after}"
    for redactor in (MASK, HASH):
        out = redactor.text(text, counts := {})
        assert value not in out
        assert sum(counts.values()) >= 1
        assert leftovers(redactor, out) == []


@examples(200)
@given(
    st.text(
        alphabet=st.characters(blacklist_characters="0123456789@:-_./+=", codec="utf-8"),
        max_size=300,
    )
)
def test_text_without_anything_to_find_is_returned_as_it_is(text: str) -> None:
    """No digits, no @, no key punctuation: the very same string comes back, nothing counted."""
    counts: dict[str, int] = {}
    assert MASK.text(text, counts) == text
    assert counts == {}


@examples(200)
@given(st.one_of(chat_text, any_text))
def test_tokens_are_the_only_new_text(text: str) -> None:
    """Outside its tokens, the redacted text keeps the original's characters in order."""
    out = MASK.text(text, {})
    remains = TOKEN.sub("", out)
    iterator = iter(text)
    assert all(char in iterator for char in remains)


def each_string(redactor: Redactor, value: Any, counts: dict[str, int]) -> Any:
    """The reference: every string redacted on its own."""
    if isinstance(value, str):
        return redactor.text(value, counts)
    if isinstance(value, list):
        return [each_string(redactor, item, counts) for item in value]
    if isinstance(value, dict):
        return {key: each_string(redactor, item, counts) for key, item in value.items()}
    return value


no_nul = st.one_of(chat_text, planted, st.text(max_size=40)).map(lambda t: t.replace("\x00", ""))
json_strings = st.recursive(
    no_nul | st.integers() | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=10,
)  # fmt: skip


@examples(200)
@given(json_strings)
def test_a_json_value_is_redacted_as_if_string_by_string(value: Any) -> None:
    """Redacting a record's strings joined in one pass gives what each string alone gives,
    counts included; and a value with nothing found is returned as the very same object."""
    for redactor in (MASK, HASH):
        joined: dict[str, int] = {}
        alone: dict[str, int] = {}
        out = redactor.value(value, joined)
        assert out == each_string(redactor, value, alone)
        assert joined == alone
        if not joined:
            assert out is value
